//! Budgets for profile input: a profile is outside input, and neither its size
//! nor its nesting may cost unbounded memory or time before it is refused.

/// Largest profile file read (Docker's default profile is about 20 KB).
pub const MAX_PROFILE_BYTES: u64 = 8 << 20;

/// Deepest nesting accepted (a Docker or Kubernetes profile nests about 8 deep).
/// serde_json refuses beyond 128 on its own; YAML is checked here first,
/// because the YAML parser spends seconds on a document nested 100,000 deep.
pub const MAX_DEPTH: usize = 64;

/// The first line (1-based) at which `text`, read as YAML, nests deeper than
/// `limit`: flow collections (`[`, `{`) plus block indentation levels plus
/// compact sequence entries (`- - x`). Conservative: quotes and comments are
/// skipped, so what it counts is real structure.
pub fn yaml_too_deep(text: &str, limit: usize) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if flow == 0 {
            let indent = line.len() - content.len();
            while indents.last().is_some_and(|top| *top >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut rest = content;
        let mut dashes = 0;
        while let Some(r) = rest.strip_prefix("- ") {
            dashes += 1;
            rest = r.trim_start_matches(' ');
        }
        let (mut quote, mut escaped, mut prev_space) = (None::<char>, false, true);
        for c in rest.chars() {
            match quote {
                Some('"') if escaped => escaped = false,
                Some('"') if c == '\\' => escaped = true,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '#' if prev_space => break,
                    '[' | '{' => flow += 1,
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev_space = c == ' ' || c == '\t';
            if flow + indents.len() + dashes > limit {
                return Some(n + 1);
            }
        }
        if indents.len() + dashes > limit {
            return Some(n + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_profiles_are_shallow() {
        let spo = "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nspec:\n  syscalls:\n    - action: SCMP_ACT_ALLOW\n      names: [read, write]\n      args:\n        - {index: 0, value: 1, op: SCMP_CMP_EQ}\n";
        assert_eq!(yaml_too_deep(spo, 8), None);
    }

    #[test]
    fn deep_flow_block_and_compact_nesting_are_found() {
        let flow = format!("a: {}{}\n", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(yaml_too_deep(&flow, MAX_DEPTH), Some(1));
        let block: String = (0..100).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert_eq!(yaml_too_deep(&block, MAX_DEPTH), Some(MAX_DEPTH + 1));
        let compact = format!("{}x\n", "- ".repeat(100));
        assert_eq!(yaml_too_deep(&compact, MAX_DEPTH), Some(1));
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let text = format!("a: \"{}\"\nb: '{}'\nc: 1 # {}\n", "[".repeat(200), "{".repeat(200), "[".repeat(200));
        assert_eq!(yaml_too_deep(&text, MAX_DEPTH), None);
    }
}
