//! `[[group]]`: the headings services are shown under.

use std::collections::HashMap;

use super::diagnostics::item_place;
use super::problems::Problems;
use crate::config::raw::RawGroup;
use crate::config::GroupConfig;

pub fn groups(raw: &[RawGroup], problems: &mut Problems) -> Vec<GroupConfig> {
    let mut groups = Vec::new();
    let mut group_index: HashMap<String, usize> = HashMap::new();
    for (i, g) in raw.iter().enumerate() {
        let place = item_place("group", i, g.name.as_deref());
        match g.name.as_deref().map(str::trim) {
            None | Some("") => problems.push(format!("{place}: name is required")),
            Some(name) => {
                if let Some(first) = group_index.get(name) {
                    problems.push(format!(
                        "{place}: name \"{name}\" is already used by group[{}]",
                        first + 1
                    ));
                } else {
                    group_index.insert(name.to_string(), i);
                    groups.push(GroupConfig {
                        name: name.to_string(),
                        description: g.description.clone(),
                    });
                }
            }
        }
    }
    groups
}
