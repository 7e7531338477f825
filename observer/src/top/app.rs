//! What `observer top` shows and how keys change it, without a terminal: the
//! latest frame, rates, the screen (containers or one profile), sort, filter
//! and selection. Everything here is pure, so it is tested directly.

use std::cmp::Ordering;

use observer_contract::views::{ProfileRow, TopFrame, TopRow};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::rates::Rates;

/// The two screens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screen {
    Containers,
    /// One container's profile (by record id).
    Profile {
        id: String,
    },
}

/// Orders of the container list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerSort {
    Rate,
    Name,
    Syscalls,
    New,
    Denied,
    Alerts,
}

/// Orders of a profile's syscalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallSort {
    Rate,
    Name,
    Calls,
    Errors,
    Denied,
    FirstUse,
}

impl ContainerSort {
    pub fn label(self) -> &'static str {
        match self {
            ContainerSort::Rate => "calls/s",
            ContainerSort::Name => "name",
            ContainerSort::Syscalls => "syscalls",
            ContainerSort::New => "new",
            ContainerSort::Denied => "denied",
            ContainerSort::Alerts => "alerts",
        }
    }

    fn of_key(c: char) -> Option<Self> {
        Some(match c {
            'r' => ContainerSort::Rate,
            'n' => ContainerSort::Name,
            's' => ContainerSort::Syscalls,
            'w' => ContainerSort::New,
            'd' => ContainerSort::Denied,
            'a' => ContainerSort::Alerts,
            _ => return None,
        })
    }
}

impl SyscallSort {
    pub fn label(self) -> &'static str {
        match self {
            SyscallSort::Rate => "calls/s",
            SyscallSort::Name => "name",
            SyscallSort::Calls => "calls",
            SyscallSort::Errors => "errors",
            SyscallSort::Denied => "denied",
            SyscallSort::FirstUse => "first use",
        }
    }

    fn of_key(c: char) -> Option<Self> {
        Some(match c {
            'r' => SyscallSort::Rate,
            'n' => SyscallSort::Name,
            'c' => SyscallSort::Calls,
            'e' => SyscallSort::Errors,
            'd' => SyscallSort::Denied,
            'f' => SyscallSort::FirstUse,
            _ => return None,
        })
    }
}

/// What the terminal loop must do after a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    /// Change the feed: with a container's profile, or without.
    Subscribe(Option<String>),
    Quit,
}

/// A container line as shown: its row and its rate.
#[derive(Clone, Copy, Debug)]
pub struct ContainerLine<'a> {
    pub row: &'a TopRow,
    pub rate: Option<f64>,
}

/// A syscall line of the profile screen.
#[derive(Clone, Copy, Debug)]
pub struct SyscallLine<'a> {
    pub row: &'a ProfileRow,
    pub rate: Option<f64>,
}

#[derive(Debug)]
pub struct App {
    pub frame: Option<TopFrame>,
    container_rates: Rates<String>,
    syscall_rates: Rates<(String, String)>,
    pub screen: Screen,
    pub container_sort: ContainerSort,
    pub syscall_sort: SyscallSort,
    /// The container list's filter, and the profile's.
    pub container_filter: String,
    pub syscall_filter: String,
    /// Typing a filter (after `/`).
    pub editing: bool,
    /// The selected container (by id, so it stays put when the order changes).
    selected: Option<String>,
    /// The selected line of the profile screen.
    pub syscall_cursor: usize,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    pub fn new() -> Self {
        App {
            frame: None,
            container_rates: Rates::default(),
            syscall_rates: Rates::default(),
            screen: Screen::Containers,
            container_sort: ContainerSort::Rate,
            syscall_sort: SyscallSort::Rate,
            container_filter: String::new(),
            syscall_filter: String::new(),
            editing: false,
            selected: None,
            syscall_cursor: 0,
        }
    }

    pub fn on_frame(&mut self, frame: TopFrame) {
        self.container_rates.update(frame.at_ns, frame.containers.iter().map(|c| (c.id.clone(), c.calls)));
        // A frame sent before the feed switched containers carries the old profile.
        if let Screen::Profile { id } = &self.screen
            && let Some(p) = frame.profile.as_ref().filter(|p| &p.id == id)
        {
            self.syscall_rates
                .update(frame.at_ns, p.syscalls.iter().map(|s| ((s.name.clone(), s.abi.clone()), s.calls)));
        }
        self.frame = Some(frame);
    }

    /// The profile shown, when the latest frame has the one asked for.
    pub fn profile(&self) -> Option<&observer_contract::views::ProfileView> {
        let Screen::Profile { id } = &self.screen else { return None };
        self.frame.as_ref()?.profile.as_ref().filter(|p| &p.id == id)
    }

    /// Why the profile is missing, as the agent said.
    pub fn profile_error(&self) -> Option<&str> {
        self.frame.as_ref()?.profile_error.as_deref()
    }

    /// The container list as shown: filtered, then sorted.
    pub fn containers(&self) -> Vec<ContainerLine<'_>> {
        let Some(frame) = &self.frame else { return Vec::new() };
        let needle = self.container_filter.to_lowercase();
        let mut lines: Vec<ContainerLine<'_>> = frame
            .containers
            .iter()
            .filter(|r| container_matches(r, &needle))
            .map(|row| ContainerLine { row, rate: self.container_rates.get(&row.id) })
            .collect();
        let sort = self.container_sort;
        lines.sort_by(|a, b| compare_containers(sort, a, b).then_with(|| a.row.name.cmp(&b.row.name)));
        lines
    }

    /// The profile's syscalls as shown: filtered, then sorted.
    pub fn syscalls(&self) -> Vec<SyscallLine<'_>> {
        let Some(profile) = self.profile() else { return Vec::new() };
        let needle = self.syscall_filter.to_lowercase();
        let mut lines: Vec<SyscallLine<'_>> = profile
            .syscalls
            .iter()
            .filter(|s| needle.is_empty() || s.name.to_lowercase().contains(&needle) || s.abi.contains(&needle))
            .map(|row| SyscallLine { row, rate: self.syscall_rates.get(&(row.name.clone(), row.abi.clone())) })
            .collect();
        let sort = self.syscall_sort;
        lines.sort_by(|a, b| {
            compare_syscalls(sort, a, b).then_with(|| (&a.row.name, &a.row.abi).cmp(&(&b.row.name, &b.row.abi)))
        });
        lines
    }

    /// Where the cursor is in the container list: on the selected container if
    /// it is shown, else on the first line.
    pub fn selected_index(&self) -> Option<usize> {
        let lines = self.containers();
        if lines.is_empty() {
            return None;
        }
        let at = self.selected.as_ref().and_then(|id| lines.iter().position(|l| &l.row.id == id));
        Some(at.unwrap_or(0))
    }

    pub fn filter(&self) -> &str {
        match self.screen {
            Screen::Containers => &self.container_filter,
            Screen::Profile { .. } => &self.syscall_filter,
        }
    }

    fn filter_mut(&mut self) -> &mut String {
        match self.screen {
            Screen::Containers => &mut self.container_filter,
            Screen::Profile { .. } => &mut self.syscall_filter,
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if self.editing {
            self.edit_filter(key.code);
            return Action::None;
        }
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('/') => self.editing = true,
            KeyCode::Esc => return self.back(),
            KeyCode::Enter => return self.open_selected(),
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor(1),
            KeyCode::PageUp => self.move_cursor(-10),
            KeyCode::PageDown => self.move_cursor(10),
            KeyCode::Home | KeyCode::Char('g') => self.move_cursor(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_cursor(isize::MAX / 2),
            KeyCode::Char(c) => match self.screen {
                Screen::Containers => self.container_sort = ContainerSort::of_key(c).unwrap_or(self.container_sort),
                Screen::Profile { .. } => self.syscall_sort = SyscallSort::of_key(c).unwrap_or(self.syscall_sort),
            },
            _ => {}
        }
        Action::None
    }

    fn edit_filter(&mut self, code: KeyCode) {
        match code {
            KeyCode::Enter => self.editing = false,
            KeyCode::Esc => {
                self.editing = false;
                self.filter_mut().clear();
            }
            KeyCode::Backspace => {
                self.filter_mut().pop();
            }
            KeyCode::Char(c) if !c.is_control() => self.filter_mut().push(c),
            _ => {}
        }
    }

    /// Esc: from a profile back to the list (the feed drops the profile); on
    /// the list, it clears the filter.
    fn back(&mut self) -> Action {
        match self.screen {
            Screen::Profile { .. } => {
                self.screen = Screen::Containers;
                self.syscall_filter.clear();
                Action::Subscribe(None)
            }
            Screen::Containers => {
                self.container_filter.clear();
                Action::None
            }
        }
    }

    fn open_selected(&mut self) -> Action {
        if self.screen != Screen::Containers {
            return Action::None;
        }
        let Some(i) = self.selected_index() else { return Action::None };
        let id = self.containers()[i].row.id.clone();
        self.selected = Some(id.clone());
        self.screen = Screen::Profile { id: id.clone() };
        self.syscall_rates = Rates::default();
        self.syscall_cursor = 0;
        Action::Subscribe(Some(id))
    }

    fn move_cursor(&mut self, by: isize) {
        match self.screen {
            Screen::Containers => {
                let lines = self.containers();
                let Some(at) = self.selected_index() else { return };
                let to = at.saturating_add_signed(by).min(lines.len() - 1);
                self.selected = Some(lines[to].row.id.clone());
            }
            Screen::Profile { .. } => {
                let last = self.syscalls().len().saturating_sub(1);
                self.syscall_cursor = self.syscall_cursor.saturating_add_signed(by).min(last);
            }
        }
    }
}

/// Case-insensitive, on what a person would type: name, image, runtime,
/// engine, pod, or the start of the id. `needle` is lowercase.
fn container_matches(r: &TopRow, needle: &str) -> bool {
    needle.is_empty()
        || [&r.name, &r.image, &r.runtime, &r.engine].iter().any(|f| f.to_lowercase().contains(needle))
        || r.pod.as_ref().is_some_and(|p| p.to_lowercase().contains(needle))
        || r.id.starts_with(needle)
}

/// Rates unknown yet sort below every known one.
fn by_rate(a: Option<f64>, b: Option<f64>) -> Ordering {
    b.unwrap_or(-1.0).total_cmp(&a.unwrap_or(-1.0))
}

/// Names ascending; figures from the largest.
fn compare_containers(sort: ContainerSort, a: &ContainerLine<'_>, b: &ContainerLine<'_>) -> Ordering {
    let (x, y) = (a.row, b.row);
    match sort {
        ContainerSort::Rate => by_rate(a.rate, b.rate),
        ContainerSort::Name => x.name.cmp(&y.name),
        ContainerSort::Syscalls => y.syscalls.cmp(&x.syscalls),
        ContainerSort::New => y.new_syscalls.cmp(&x.new_syscalls),
        ContainerSort::Denied => y.denied.cmp(&x.denied),
        ContainerSort::Alerts => y.alerts.cmp(&x.alerts),
    }
}

/// Names ascending; figures from the largest; first use from the newest.
fn compare_syscalls(sort: SyscallSort, a: &SyscallLine<'_>, b: &SyscallLine<'_>) -> Ordering {
    let (x, y) = (a.row, b.row);
    match sort {
        SyscallSort::Rate => by_rate(a.rate, b.rate),
        SyscallSort::Name => Ordering::Equal,
        SyscallSort::Calls => y.calls.cmp(&x.calls),
        SyscallSort::Errors => y.errors.cmp(&x.errors),
        SyscallSort::Denied => y.denied.cmp(&x.denied),
        SyscallSort::FirstUse => {
            // The first use the screen shows (the container's own for its rows).
            let t = |r: &ProfileRow| r.owners_first_use().and_then(|f| crate::clock::parse_time(&f.first_seen));
            t(y).cmp(&t(x))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use observer_contract::views::{FirstCall, Owner, Phase, ProfileView, State};

    pub(crate) fn row(name: &str, calls: u64, denied: u64) -> TopRow {
        TopRow {
            id: format!("{name}0123456789abcdef"),
            name: name.into(),
            image: "example/app:1".into(),
            runtime: "runc".into(),
            engine: "docker".into(),
            pod: None,
            state: State::Running,
            calls,
            syscalls: 40,
            new_syscalls: 0,
            denied,
            alerts: 0,
            enforce: None,
            baseline: None,
        }
    }

    pub(crate) fn syscall(name: &str, calls: u64, first_seen: &str) -> ProfileRow {
        ProfileRow {
            name: name.into(),
            abi: "x86_64".into(),
            phase: Phase::Container,
            phases: vec![Phase::Container],
            denied_phases: vec![],
            owner: Owner::Container,
            calls,
            errors: 0,
            denied: 0,
            first_seen: Some(first_seen.into()),
            pid: Some(1),
            comm: Some("sh".into()),
            container_first_use: Some(FirstCall { first_seen: first_seen.into(), pid: 1, comm: "sh".into() }),
        }
    }

    pub(crate) fn frame(at_s: u64, containers: Vec<TopRow>, profile: Option<ProfileView>) -> TopFrame {
        TopFrame {
            at_ns: at_s * 1_000_000_000,
            time: "2026-12-01T00:00:00Z".into(),
            containers,
            alerts: vec![],
            profile,
            profile_error: None,
        }
    }

    pub(crate) fn profile_of(r: &TopRow, syscalls: Vec<ProfileRow>) -> ProfileView {
        ProfileView {
            id: r.id.clone(),
            name: r.name.clone(),
            image: r.image.clone(),
            runtime: r.runtime.clone(),
            state: r.state,
            first_seen: "2026-12-01T00:00:00Z".into(),
            observed_since: None,
            seccomp_mode: Some(2),
            calls: r.calls,
            baseline: None,
            syscalls,
            args: Default::default(),
        }
    }

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn code(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn names(app: &App) -> Vec<&str> {
        app.containers().iter().map(|l| l.row.name.as_str()).collect()
    }

    /// Two frames, one second apart: busy makes 1000 calls/s, idle 1, quiet 0.
    pub(crate) fn two_frames() -> App {
        let mut app = App::new();
        let mut idle = row("idle", 10, 3);
        idle.alerts = 2;
        app.on_frame(frame(1, vec![row("busy", 100, 0), idle.clone(), row("quiet", 5, 0)], None));
        idle.calls = 11;
        app.on_frame(frame(2, vec![row("busy", 1100, 0), idle, row("quiet", 5, 0)], None));
        app
    }

    #[test]
    fn keys_sort_the_list() {
        let mut app = two_frames();
        assert_eq!(names(&app), ["busy", "idle", "quiet"], "by rate first");
        app.on_key(key('n'));
        assert_eq!(app.container_sort, ContainerSort::Name);
        assert_eq!(names(&app), ["busy", "idle", "quiet"]);
        app.on_key(key('d'));
        assert_eq!(names(&app), ["idle", "busy", "quiet"], "denials first, then by name");
        app.on_key(key('a'));
        assert_eq!(names(&app)[0], "idle");
        app.on_key(key('x'));
        assert_eq!(app.container_sort, ContainerSort::Alerts, "an unbound key changes nothing");
        let rates: Vec<Option<f64>> = app.containers().iter().map(|l| l.rate).collect();
        assert_eq!(rates, [Some(1.0), Some(1000.0), Some(0.0)]);
    }

    #[test]
    fn slash_types_a_filter_and_esc_clears_it() {
        let mut app = two_frames();
        assert_eq!(app.on_key(key('/')), Action::None);
        for c in "QUI".chars() {
            app.on_key(key(c));
        }
        // While typing, letters are text, not sort keys or quit.
        assert_eq!(app.on_key(key('q')), Action::None);
        assert_eq!(app.container_filter, "QUIq");
        app.on_key(code(KeyCode::Backspace));
        app.on_key(code(KeyCode::Enter));
        assert!(!app.editing);
        assert_eq!(names(&app), ["quiet"], "case-insensitive");
        app.on_key(code(KeyCode::Esc));
        assert_eq!(names(&app).len(), 3);
        // By image, and by the start of the id.
        app.container_filter = "APP:1".into();
        assert_eq!(names(&app).len(), 3);
        app.container_filter = "idle0123".into();
        assert_eq!(names(&app), ["idle"]);
    }

    #[test]
    fn enter_opens_the_selected_profile_and_esc_goes_back() {
        let mut app = two_frames();
        app.on_key(code(KeyCode::Down));
        assert_eq!(app.selected_index(), Some(1));
        let idle = app.containers()[1].row.clone();
        assert_eq!(app.on_key(code(KeyCode::Enter)), Action::Subscribe(Some(idle.id.clone())));
        assert_eq!(app.screen, Screen::Profile { id: idle.id.clone() });
        assert!(app.profile().is_none(), "until a frame carries it");

        let syscalls =
            |n| vec![syscall("read", n, "2026-12-01T00:00:01Z"), syscall("wait4", 7, "2026-12-01T00:00:02Z")];
        let stale = profile_of(&row("busy", 1, 0), vec![]);
        app.on_frame(frame(3, vec![idle.clone()], Some(stale)));
        assert!(app.profile().is_none(), "a frame of the old subscription is not this profile");
        app.on_frame(frame(4, vec![idle.clone()], Some(profile_of(&idle, syscalls(10)))));
        app.on_frame(frame(6, vec![idle.clone()], Some(profile_of(&idle, syscalls(30)))));
        let lines = app.syscalls();
        assert_eq!(lines[0].row.name, "read");
        assert_eq!(lines[0].rate, Some(10.0));
        app.on_key(key('f'));
        assert_eq!(app.syscalls()[0].row.name, "wait4", "newest first use first");
        app.on_key(key('/'));
        app.on_key(key('r'));
        app.on_key(code(KeyCode::Enter));
        assert_eq!(app.syscalls().len(), 1);

        assert_eq!(app.on_key(code(KeyCode::Esc)), Action::Subscribe(None));
        assert_eq!(app.screen, Screen::Containers);
        assert_eq!(app.selected_index(), Some(0), "the only container shown");
        assert_eq!(app.on_key(key('q')), Action::Quit);
        assert_eq!(app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Action::Quit);
    }

    #[test]
    fn the_cursor_follows_its_container_and_stays_in_bounds() {
        let mut app = two_frames();
        app.on_key(code(KeyCode::End));
        assert_eq!(app.selected_index(), Some(2));
        app.on_key(code(KeyCode::Down));
        assert_eq!(app.selected_index(), Some(2));
        app.on_key(key('n'));
        // quiet is last by name too; select idle and re-sort: the cursor moves with it.
        app.on_key(code(KeyCode::Up));
        app.on_key(key('d'));
        assert_eq!(app.containers()[app.selected_index().unwrap()].row.name, "idle");
        app.on_key(code(KeyCode::Home));
        assert_eq!(app.selected_index(), Some(0));
        let mut empty = App::new();
        assert_eq!(empty.on_key(code(KeyCode::Enter)), Action::None);
        empty.on_key(code(KeyCode::Down));
    }
}
