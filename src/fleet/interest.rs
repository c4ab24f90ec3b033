//! Which coordinators a reader follows: every transport hands it the same events, and the
//! reader (agent or bridge) applies the same rule to all of them.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::event::CoordinatorId;

/// Which coordinators a subscriber listens to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Interest {
    /// Every coordinator.
    #[default]
    All,
    /// Only these coordinator ids.
    Only(BTreeSet<CoordinatorId>),
}

impl Interest {
    /// Interest in the given ids (all coordinators if the list is empty).
    pub fn of(ids: impl IntoIterator<Item = CoordinatorId>) -> Self {
        let ids: BTreeSet<_> = ids.into_iter().collect();
        if ids.is_empty() {
            Self::All
        } else {
            Self::Only(ids)
        }
    }

    /// Whether events of `id` are wanted.
    pub fn wants(&self, id: &CoordinatorId) -> bool {
        match self {
            Self::All => true,
            Self::Only(ids) => ids.contains(id),
        }
    }
}

/// One entry of a follow list (`feedback.coordinators`): a coordinator id, or `*` for every
/// coordinator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Follow {
    /// Every coordinator (`*`).
    Any,
    /// This coordinator.
    Id(CoordinatorId),
}

impl fmt::Display for Follow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Id(id) => write!(f, "{id}"),
        }
    }
}

impl<'de> Deserialize<'de> for Follow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        if raw == "*" {
            return Ok(Self::Any);
        }
        CoordinatorId::new(raw)
            .map(Self::Id)
            .map_err(serde::de::Error::custom)
    }
}

impl Interest {
    /// What a follow list means for an agent that writes to `writes_to`: an empty list
    /// follows exactly those coordinators; `*` follows every coordinator; otherwise the
    /// listed ones (which may widen or narrow the default).
    pub fn following(list: &[Follow], writes_to: &[CoordinatorId]) -> Self {
        if list.contains(&Follow::Any) {
            return Self::All;
        }
        let listed: BTreeSet<CoordinatorId> = list
            .iter()
            .filter_map(|f| match f {
                Follow::Id(id) => Some(id.clone()),
                Follow::Any => None,
            })
            .collect();
        if listed.is_empty() {
            Self::Only(writes_to.iter().cloned().collect())
        } else {
            Self::Only(listed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CoordinatorId {
        CoordinatorId::new(s).unwrap()
    }

    #[test]
    fn an_empty_list_follows_what_the_agent_writes_to() {
        let writes = [id("default")];
        let only = |ids: &[&str]| Interest::Only(ids.iter().map(|s| id(s)).collect());
        assert_eq!(Interest::following(&[], &writes), only(&["default"]));
        assert_eq!(Interest::following(&[Follow::Any], &writes), Interest::All);
        let list = [Follow::Id(id("a")), Follow::Id(id("b"))];
        assert_eq!(Interest::following(&list, &writes), only(&["a", "b"]));
        assert!(!Interest::following(&[], &writes).wants(&id("ghost")));
        let parsed: Vec<Follow> = serde_json::from_str(r#"["*", "a"]"#).unwrap();
        assert_eq!(parsed, vec![Follow::Any, Follow::Id(id("a"))]);
        assert!(serde_json::from_str::<Vec<Follow>>(r#"["a.b"]"#).is_err());
    }
}
