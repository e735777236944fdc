//! The networks of an environment, as `drover network` shows and changes them: those made
//! with `drover network create` (which stacks join with `external: true`) and every stack's
//! own. Which names may be made, what each network is, and when one may go.

use std::collections::{BTreeMap, BTreeSet};

/// Longest name of a network made with `drover network create`.
pub const MAX_NAME: usize = 64;

/// Whether `name` may be the name of a network made with `drover network create`: 1 to 64
/// characters, `[a-zA-Z0-9][a-zA-Z0-9_.-]*`. The error says what is wrong.
pub fn check_name(name: &str) -> Result<(), String> {
    if matches!(name, "host" | "bridge" | "none" | "default" | "ingress") {
        return Err(format!(
            "'{name}' is the engine's own network name: choose another"
        ));
    }
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err("a network name must not be empty".into());
    };
    if !first.is_ascii_alphanumeric() {
        return Err(format!(
            "invalid network name {name:?}: it must start with a letter or a digit"
        ));
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c))) {
        return Err(format!(
            "invalid network name {name:?}: {c:?} is not allowed (letters, digits, _ . - only)"
        ));
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "invalid network name: {} characters, at most {MAX_NAME}",
            name.len()
        ));
    }
    Ok(())
}

/// What the environment knows of one network (by engine name).
#[derive(Debug, Default)]
pub struct Known {
    /// Made with `drover network create`, at this time.
    pub created_ms: Option<u64>,
    /// Stacks that join it with `external: true`.
    pub joined: BTreeSet<String>,
    /// Stacks whose own network it is.
    pub owners: BTreeSet<String>,
}

impl Known {
    /// `stack` only when it is some stack's own network and was not made by
    /// `drover network create`.
    pub fn kind(&self) -> &'static str {
        if self.created_ms.is_none() && !self.owners.is_empty() {
            "stack"
        } else {
            "external"
        }
    }

    pub fn stacks(&self) -> Vec<String> {
        self.joined.union(&self.owners).cloned().collect()
    }
}

/// A stack's use of a network: (stack, engine name, joined as `external`).
pub type Use = (String, String, bool);

/// Every network by engine name: `created` (name, when) and those the stacks use.
pub fn catalog(created: &[(String, u64)], uses: &[Use]) -> BTreeMap<String, Known> {
    let mut out: BTreeMap<String, Known> = created
        .iter()
        .map(|(name, at)| {
            let k = Known {
                created_ms: Some(*at),
                ..Known::default()
            };
            (name.clone(), k)
        })
        .collect();
    for (stack, name, external) in uses {
        let k = out.entry(name.clone()).or_default();
        if *external {
            k.joined.insert(stack.clone());
        } else {
            k.owners.insert(stack.clone());
        }
    }
    out
}

/// Why network `name` cannot be removed, if it cannot.
pub fn check_removable(name: &str, k: &Known) -> Result<(), String> {
    let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
    if k.created_ms.is_none() && !k.owners.is_empty() {
        let message = match k.owners.first() {
            Some(only) if k.owners.len() == 1 => format!(
                "network '{name}' belongs to stack {only}: it goes with `drover stack rm {only}`"
            ),
            _ => format!(
                "network '{name}' belongs to stacks {}: it goes with the last of them (`drover stack rm`)",
                list(&k.owners)
            ),
        };
        return Err(message);
    }
    let users: BTreeSet<String> = k.joined.union(&k.owners).cloned().collect();
    if !users.is_empty() {
        let which = if users.len() == 1 { "stack" } else { "stacks" };
        return Err(format!(
            "network '{name}' is joined by {which} {} (external: true): remove {} or redeploy without it first",
            list(&users),
            if users.len() == 1 { "it" } else { "them" }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names() {
        let long = "a".repeat(MAX_NAME);
        for ok in ["a", "A9", "0net", "front_end", "x.y-z", "a-", long.as_str()] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        let too_long = "a".repeat(MAX_NAME + 1);
        for (bad, why) in [
            ("", "must not be empty"),
            ("-net", "start with a letter or a digit"),
            ("_net", "start with a letter or a digit"),
            (".net", "start with a letter or a digit"),
            ("net work", "' ' is not allowed"),
            ("net/work", "'/' is not allowed"),
            ("nét", "'é' is not allowed"),
            ("net\n", "'\\n' is not allowed"),
            (too_long.as_str(), "at most 64"),
            ("host", "the engine's own network"),
            ("bridge", "the engine's own network"),
            ("none", "the engine's own network"),
        ] {
            let e = check_name(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_stacks_own_network_goes_with_the_stack() {
        let owned = Known {
            owners: ["shop".to_string()].into(),
            ..Known::default()
        };
        assert_eq!(owned.kind(), "stack");
        let e = check_removable("shop_default", &owned).expect_err("owned");
        assert!(
            e.contains("belongs to stack shop: it goes with `drover stack rm shop`"),
            "{}",
            e
        );

        let joined = Known {
            created_ms: Some(1),
            joined: ["a".to_string(), "b".to_string()].into(),
            ..Known::default()
        };
        assert_eq!(joined.kind(), "external");
        let e = check_removable("shared", &joined).expect_err("joined");
        assert!(e.contains("stacks a, b"), "{}", e);

        let unused = Known {
            created_ms: Some(1),
            ..Known::default()
        };
        assert!(check_removable("shared", &unused).is_ok());
    }
}

#[cfg(test)]
mod catalog_tests {
    use super::*;

    #[test]
    fn made_and_stack_networks_are_one_catalogue() {
        let made = [("shared".to_string(), 5)];
        let uses: Vec<Use> = vec![
            ("front".into(), "shared".into(), true),
            ("back".into(), "shared".into(), true),
            ("front".into(), "front_default".into(), false),
        ];
        let all = catalog(&made, &uses);
        let shared = &all["shared"];
        assert_eq!(shared.created_ms, Some(5));
        assert_eq!(shared.kind(), "external");
        assert_eq!(shared.stacks(), ["back", "front"]);
        assert_eq!(all["front_default"].kind(), "stack");
        assert!(check_removable("shared", shared).is_err());
    }
}
