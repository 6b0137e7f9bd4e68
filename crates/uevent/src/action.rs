//! The kernel's uevent actions.

use std::fmt;
use std::str::FromStr;

/// One of the eight actions the kernel puts in a uevent (`kobject_actions[]` in
/// `lib/kobject_uevent.c`; `bind`/`unbind` since Linux 4.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// A device was added (also every coldplug replay).
    Add,
    /// A device was removed.
    Remove,
    /// A device changed state (media change, resize, ...).
    Change,
    /// A device was renamed or re-parented; the event carries `DEVPATH_OLD`.
    Move,
    /// A device (CPU, memory block) was brought online.
    Online,
    /// A device was taken offline.
    Offline,
    /// A driver was bound to the device.
    Bind,
    /// The driver was unbound from the device (the kernel strips `MODALIAS`).
    Unbind,
}

impl Action {
    /// Every action, in the kernel's order.
    pub const ALL: [Action; 8] = [
        Action::Add,
        Action::Remove,
        Action::Change,
        Action::Move,
        Action::Online,
        Action::Offline,
        Action::Bind,
        Action::Unbind,
    ];

    /// Parses the action word exactly as the kernel spells it (lower case, no whitespace).
    pub fn from_bytes(word: &[u8]) -> Option<Action> {
        Some(match word {
            b"add" => Action::Add,
            b"remove" => Action::Remove,
            b"change" => Action::Change,
            b"move" => Action::Move,
            b"online" => Action::Online,
            b"offline" => Action::Offline,
            b"bind" => Action::Bind,
            b"unbind" => Action::Unbind,
            _ => return None,
        })
    }

    /// The kernel's spelling of the action.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
            Action::Change => "change",
            Action::Move => "move",
            Action::Online => "online",
            Action::Offline => "offline",
            Action::Bind => "bind",
            Action::Unbind => "unbind",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`Action::from_str`]: the word is not one of the kernel's actions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown uevent action {0:?}")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::from_bytes(s.as_bytes()).ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_through_its_spelling() {
        for action in Action::ALL {
            assert_eq!(Action::from_bytes(action.as_str().as_bytes()), Some(action));
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
            assert_eq!(action.to_string(), action.as_str());
        }
    }

    #[test]
    fn action_words_are_case_sensitive_and_exact() {
        for word in ["Add", "ADD", "add ", " add", "add\n", "", "rebind", "adds"] {
            assert_eq!(Action::from_bytes(word.as_bytes()), None, "{word:?}");
        }
        assert_eq!("Add".parse::<Action>(), Err(UnknownAction("Add".into())));
    }
}
