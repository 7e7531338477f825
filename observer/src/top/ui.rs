//! Drawing `observer top`: a header line, the container list or one
//! container's profile, the latest alerts, and a line of keys.

use observer_contract::{alerts::Alert, rules::EnforceAction, views::State};
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style, Stylize as _},
    text::{Line, Span},
    widgets::{Block, Paragraph, Row, Table, TableState},
};

use super::app::{App, Screen};

/// Alert lines the panel shows (newest first).
const ALERT_LINES: u16 = 5;

pub fn draw(f: &mut Frame<'_>, app: &App) {
    let [header, body, alerts, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(ALERT_LINES + 2),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(header_line(app)).style(Style::new().reversed()), header);
    match app.screen {
        Screen::Containers => draw_containers(f, app, body),
        Screen::Profile { .. } => draw_profile(f, app, body),
    }
    draw_alerts(f, app, alerts);
    f.render_widget(Paragraph::new(footer_line(app)), footer);
}

fn header_line(app: &App) -> Line<'static> {
    let time = app.frame.as_ref().map_or_else(|| "--:--:--".into(), |f| clock(&f.time, false));
    let mut parts = vec![" observer top".to_owned(), time];
    match (&app.screen, app.profile()) {
        (Screen::Containers, _) => {
            let total = app.frame.as_ref().map_or(0, |f| f.containers.len());
            let shown = app.containers().len();
            parts.push(if shown == total {
                format!("{total} containers")
            } else {
                format!("{shown}/{total} containers")
            });
            parts.push(format!("sort: {}", app.container_sort.label()));
        }
        (Screen::Profile { .. }, Some(p)) => {
            parts.push(p.name.clone());
            parts.push(p.image.clone());
            parts.push(p.runtime.clone());
            parts.push(state(p.state).into());
            parts.push(format!("{} syscalls, {} calls", p.syscalls.len(), p.calls));
            parts.push(format!("sort: {}", app.syscall_sort.label()));
        }
        (Screen::Profile { id }, None) => parts.push(crate::printable::short(id)),
    }
    if !app.filter().is_empty() {
        parts.push(format!("filter: {}", app.filter()));
    }
    // Last, as the longest part: the line is cut at the terminal's edge.
    if let Some(b) = app.profile().and_then(|p| p.baseline.as_deref()) {
        let file = std::path::Path::new(b).file_name().map_or(b.into(), |f| f.to_string_lossy());
        parts.push(format!("baseline {file}"));
    }
    Line::from(parts.join(" │ "))
}

fn footer_line(app: &App) -> Line<'static> {
    if app.editing {
        return Line::from(vec![
            Span::raw(" filter: "),
            Span::raw(app.filter().to_owned()).bold(),
            Span::raw("▏ (enter keeps it, esc clears it)"),
        ]);
    }
    let keys = match app.screen {
        Screen::Containers => {
            " q quit │ / filter │ ↑↓ select │ enter profile │ sort: r calls/s  n name  s syscalls  w new  d denied  a alerts"
        }
        Screen::Profile { .. } => {
            " esc back │ q quit │ / filter │ sort: r calls/s  n name  c calls  e errors  d denied  f first use"
        }
    };
    Line::from(keys).dim()
}

fn header_row(cells: &[&'static str]) -> Row<'static> {
    Row::new(cells.iter().copied()).style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED))
}

fn draw_containers(f: &mut Frame<'_>, app: &App, area: Rect) {
    let lines = app.containers();
    let rows = lines.iter().map(|l| {
        let r = l.row;
        Row::new(vec![
            crate::printable::printable(&r.name).into_owned(),
            crate::printable::printable(&r.image).into_owned(),
            r.runtime.clone(),
            r.pod.clone().unwrap_or_else(|| "-".into()),
            state(r.state).into(),
            rate(l.rate),
            r.syscalls.to_string(),
            r.new_syscalls.to_string(),
            r.denied.to_string(),
            r.alerts.to_string(),
            enforcement(r.enforce, r.baseline.is_some()).into(),
        ])
    });
    let widths = [
        Constraint::Fill(2),
        Constraint::Fill(2),
        Constraint::Length(8),
        Constraint::Fill(1),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(8),
    ];
    let header = header_row(&[
        "NAME", "IMAGE", "RUNTIME", "POD", "STATE", "CALLS/S", "SYSCALLS", "NEW/1m", "DENIED", "ALERTS", "ENFORCE",
    ]);
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::new().reversed())
        .block(Block::bordered().title(" containers "));
    f.render_stateful_widget(table, area, &mut TableState::default().with_selected(app.selected_index()));
}

fn draw_profile(f: &mut Frame<'_>, app: &App, area: Rect) {
    let block = Block::bordered().title(" profile (esc: back) │ calls, errors, denied: totals over every phase ");
    if app.profile().is_none() {
        let why = app.profile_error().map_or_else(|| "waiting for the profile…".to_owned(), str::to_owned);
        f.render_widget(Paragraph::new(why).block(block), area);
        return;
    }
    let lines = app.syscalls();
    let rows = lines.iter().map(|l| {
        let r = l.row;
        Row::new(vec![
            r.name.clone(),
            r.abi.clone(),
            r.owner.label().into(),
            r.calls.to_string(),
            rate(l.rate),
            r.errors.to_string(),
            r.denied.to_string(),
            r.phases_label(),
            // The first call by whom USED BY names (the container's own for its rows).
            r.owners_first_use().map_or_else(|| "-".into(), |f| clock(&f.first_seen, true)),
        ])
    });
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(28),
        Constraint::Length(12),
    ];
    let header =
        header_row(&["SYSCALL", "ABI", "USED BY", "CALLS", "CALLS/S", "ERRORS", "DENIED", "PHASES", "FIRST USE"]);
    let table = Table::new(rows, widths).header(header).row_highlight_style(Style::new().reversed()).block(block);
    let cursor = (!lines.is_empty()).then(|| app.syscall_cursor.min(lines.len() - 1));
    f.render_stateful_widget(table, area, &mut TableState::default().with_selected(cursor));
}

fn draw_alerts(f: &mut Frame<'_>, app: &App, area: Rect) {
    let alerts: Vec<&Alert> = app.frame.as_ref().map(|f| f.alerts.iter().rev().collect()).unwrap_or_default();
    let lines: Vec<Line<'_>> = if alerts.is_empty() {
        vec![Line::from("no alerts yet").dim()]
    } else {
        alerts.iter().take(usize::from(ALERT_LINES)).map(|a| alert_line(a)).collect()
    };
    f.render_widget(Paragraph::new(lines).block(Block::bordered().title(" latest alerts ")), area);
}

fn alert_line(a: &Alert) -> Line<'static> {
    let what = if a.syscall.is_empty() {
        a.detail.clone().unwrap_or_default()
    } else {
        format!("{} ({}) by {} [{}]", a.syscall, a.abi, crate::printable::printable(&a.comm), a.pid)
    };
    Line::from(vec![
        Span::raw(format!("{}  ", clock(&a.time, false))),
        Span::raw(a.kind.as_str()).bold(),
        Span::raw(format!("  {}  {what}", crate::printable::printable(&a.name))),
    ])
}

fn state(s: State) -> &'static str {
    match s {
        State::Running => "running",
        State::Exited => "exited",
        State::FailedToStart => "failed",
    }
}

/// The enforcement state: the rule's action, else `baseline` when drift
/// alerts, else `-`.
fn enforcement(action: Option<EnforceAction>, baseline: bool) -> &'static str {
    match (action, baseline) {
        (Some(EnforceAction::Kill), _) => "kill",
        (Some(EnforceAction::Alert), _) => "alert",
        (None, true) => "baseline",
        (None, false) => "-",
    }
}

/// Calls per second, short: `-` until two frames give one.
pub fn rate(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r >= 999_500.0 => format!("{:.1}M", r / 1e6),
        Some(r) if r >= 9_999.5 => format!("{:.1}k", r / 1e3),
        Some(r) if r >= 99.5 => format!("{r:.0}"),
        Some(r) => format!("{r:.1}"),
    }
}

/// The time of day (UTC) of an RFC 3339 time, with milliseconds or not; the
/// text as it is when it does not parse.
fn clock(t: &str, millis: bool) -> String {
    let Some(t) = crate::clock::parse_time(t) else { return t.to_owned() };
    let format = if millis {
        time::macros::format_description!("[hour]:[minute]:[second].[subsecond digits:3]")
    } else {
        time::macros::format_description!("[hour]:[minute]:[second]")
    };
    t.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use ratatui::{Terminal, backend::TestBackend, crossterm::event::KeyEvent};

    use super::*;
    use crate::top::app::tests::{profile_of, syscall, two_frames};
    use observer_contract::{
        alerts::AlertKind,
        views::{Owner, Phase},
    };

    fn screen(app: &App, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, app)).unwrap();
        let buffer = terminal.backend().buffer();
        buffer
            .content()
            .chunks(usize::from(buffer.area.width))
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
            .collect()
    }

    fn line_of(screen: &[String], text: &str) -> usize {
        screen
            .iter()
            .position(|l| l.contains(text))
            .unwrap_or_else(|| panic!("{text:?} not on screen:\n{}", screen.join("\n")))
    }

    fn press(app: &mut App, c: char) {
        app.on_key(KeyEvent::from(ratatui::crossterm::event::KeyCode::Char(c)));
    }

    #[test]
    fn the_list_shows_each_container_with_its_rate_sorted() {
        let mut app = two_frames();
        let s = screen(&app, 140, 24);
        assert!(s[0].contains("3 containers") && s[0].contains("sort: calls/s"), "{}", s[0]);
        let busy = line_of(&s, "busy");
        assert!(busy < line_of(&s, "idle") && line_of(&s, "idle") < line_of(&s, "quiet"));
        assert!(s[busy].contains("1000") && s[busy].contains("running") && s[busy].contains("runc"), "{}", s[busy]);
        assert!(line_of(&s, "no alerts yet") > line_of(&s, "quiet"));
        press(&mut app, 'd');
        let s = screen(&app, 140, 24);
        assert!(line_of(&s, "idle") < line_of(&s, "busy"));
        assert!(s[0].contains("sort: denied"));
        // Narrow terminals still draw (columns shrink).
        screen(&app, 60, 12);
    }

    #[test]
    fn the_profile_screen_shows_calls_rate_phase_and_first_use() {
        let mut app = two_frames();
        app.on_key(KeyEvent::from(ratatui::crossterm::event::KeyCode::Enter));
        let s = screen(&app, 140, 24);
        assert!(s.iter().any(|l| l.contains("waiting for the profile")));
        let busy = app.frame.as_ref().unwrap().containers[0].clone();
        let mut frame = crate::top::app::tests::frame(3, vec![busy.clone()], None);
        // runc's init made newfstatat first, the container's loop then; pivot_root was runc's alone.
        let mut newfstatat = syscall("newfstatat", 500, "2026-12-01T00:09:59.900Z");
        newfstatat.phases = vec![Phase::InitBeforeFilter, Phase::Container];
        newfstatat.phase = Phase::InitBeforeFilter;
        newfstatat.comm = Some("runc".into());
        newfstatat.container_first_use.as_mut().unwrap().first_seen = "2026-12-01T00:10:00.202Z".into();
        let mut pivot_root = syscall("pivot_root", 1, "2026-12-01T00:09:59.950Z");
        (pivot_root.phases, pivot_root.phase) = (vec![Phase::InitBeforeFilter], Phase::InitBeforeFilter);
        (pivot_root.owner, pivot_root.container_first_use) = (Owner::Runtime, None);
        frame.profile =
            Some(profile_of(&busy, vec![syscall("wait4", 20, "2026-12-01T00:10:00.101Z"), newfstatat, pivot_root]));
        app.on_frame(frame.clone());
        frame.at_ns += 2_000_000_000;
        frame.profile.as_mut().unwrap().syscalls[0].calls = 60;
        app.on_frame(frame);
        let s = screen(&app, 140, 24);
        let wait4 = line_of(&s, "wait4");
        for part in ["x86_64", "60", "20.0", "container", "00:10:00.101"] {
            assert!(s[wait4].contains(part), "{part:?} missing from {:?}", s[wait4]);
        }
        let columns = |text: &str| -> Vec<String> {
            s[line_of(&s, text)].trim_matches('│').split_whitespace().map(str::to_owned).collect()
        };
        assert_eq!(columns("newfstatat")[2], "container");
        assert_eq!(columns("newfstatat")[7..], ["init,container", "00:10:00.202"], "the container's own first use");
        assert_eq!(columns("pivot_root")[2], "runtime");
        assert_eq!(columns("pivot_root")[7..], ["init", "00:09:59.950"]);
        assert!(s[line_of(&s, "profile (esc: back)")].contains("totals over every phase"));
        assert!(s[0].contains("busy") && s[0].contains("3 syscalls"), "{}", s[0]);
        assert!(s.last().unwrap().contains("esc back"));
    }

    #[test]
    fn the_alerts_panel_shows_the_newest_first() {
        let mut app = two_frames();
        // Read as the feed reads alert lines (fields are only ever added).
        let alert = |syscall: &str, time: &str| -> Alert {
            serde_json::from_value(serde_json::json!({"time": time, "kind": AlertKind::OutsideBaseline, "id": "x",
                "name": "busy", "image": "observer-busybox:latest", "pid": 42, "comm": "chmod",
                "syscall": syscall, "abi": "x86_64"}))
            .unwrap()
        };
        let mut frame = app.frame.clone().unwrap();
        frame.at_ns += 1;
        frame.alerts = vec![alert("chmod", "2026-12-01T00:00:05Z"), alert("mknod", "2026-12-01T00:00:09Z")];
        app.on_frame(frame);
        let s = screen(&app, 140, 24);
        let (chmod, mknod) = (line_of(&s, "chmod (x86_64)"), line_of(&s, "mknod (x86_64)"));
        assert!(mknod < chmod, "newest first");
        assert!(s[chmod].contains("00:00:05") && s[chmod].contains("outside_baseline") && s[chmod].contains("[42]"));
    }

    #[test]
    fn typing_a_filter_shows_it_and_hides_what_does_not_match() {
        let mut app = two_frames();
        press(&mut app, '/');
        for c in "idl".chars() {
            press(&mut app, c);
        }
        let s = screen(&app, 140, 24);
        assert!(s.last().unwrap().contains("filter: idl"));
        assert!(s[0].contains("1/3 containers"));
        assert!(!s.iter().any(|l| l.contains("busy")));
    }

    #[test]
    fn rates_are_short() {
        assert_eq!(rate(None), "-");
        assert_eq!(rate(Some(0.25)), "0.2");
        assert_eq!(rate(Some(1234.4)), "1234");
        assert_eq!(rate(Some(123_456.0)), "123.5k");
        assert_eq!(rate(Some(2_500_000.0)), "2.5M");
        assert_eq!(clock("2026-12-01T01:02:03.456789Z", true), "01:02:03.456");
        assert_eq!(clock("garbage", false), "garbage");
    }
}
