//! Which backups to keep: restic's `forget --keep-*` rules over complete,
//! verified backups, plus the guards that make rotation safe to run
//! unattended. A pure function of the catalogue, so every plan can be
//! tested against hand-computed sets.
//!
//! Rules (ORed): `last` n keeps the n newest; `hourly`/`daily`/`weekly`/
//! `monthly`/`yearly` n keep, over the newest n periods that have a backup,
//! the newest backup of each. Periods are UTC calendar periods; weeks run
//! Monday to Sunday (ISO weeks). Guards:
//! - only verified backups count toward a rule;
//! - the newest verified backup is always kept;
//! - if the newest backup failed verification nothing is deleted;
//! - a backup never verified (in progress, or verify never ran) is kept;
//! - a backup that failed verification is deleted (it restores nothing);
//! - a backup whose manifest cannot be read is kept and counts for nothing:
//!   nothing is deleted on the word of a manifest beacon could not read.

use chrono::{DateTime, Datelike, Utc};

use crate::config::KeepPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Verified,
    Failed,
    /// Not verified yet (in progress) or verification never ran.
    Unverified,
    /// Its manifest is there but cannot be read or parsed.
    Unreadable,
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub verification: Verification,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    /// Why it is kept ("daily 2026-03-12", …) or deleted.
    pub reasons: Vec<String>,
}

type Bucket = fn(&DateTime<Utc>, usize) -> String;

/// The plan for every backup, newest first.
pub fn plan(backups: &[Candidate], policy: &KeepPolicy) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = backups.iter().collect();
    sorted.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let mut decisions: Vec<Decision> = sorted
        .iter()
        .map(|b| Decision {
            id: b.id.clone(),
            keep: false,
            reasons: Vec::new(),
        })
        .collect();

    let newest = sorted
        .iter()
        .find(|b| b.verification != Verification::Unreadable);
    if newest.map(|b| b.verification) == Some(Verification::Failed) {
        for d in &mut decisions {
            d.keep = true;
            d.reasons
                .push("the newest backup failed verification: nothing is deleted".into());
            if let Some(b) = sorted.iter().find(|b| b.id == d.id) {
                if b.verification == Verification::Unreadable {
                    d.reasons.push("its manifest cannot be read".into());
                }
            }
        }
        return decisions;
    }

    let rules: [(&str, u32, Bucket); 6] = [
        ("last", policy.last, |_, nr| nr.to_string()),
        ("hourly", policy.hourly, |t, _| {
            t.format("%Y-%m-%d %H:00").to_string()
        }),
        ("daily", policy.daily, |t, _| {
            t.format("%Y-%m-%d").to_string()
        }),
        ("weekly", policy.weekly, |t, _| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }),
        ("monthly", policy.monthly, |t, _| {
            t.format("%Y-%m").to_string()
        }),
        ("yearly", policy.yearly, |t, _| t.format("%Y").to_string()),
    ];
    let mut remaining: Vec<u32> = rules.iter().map(|r| r.1).collect();
    let mut last_key: Vec<Option<String>> = vec![None; rules.len()];
    let mut newest_verified_seen = false;
    for (nr, (b, d)) in sorted.iter().zip(decisions.iter_mut()).enumerate() {
        match b.verification {
            Verification::Unreadable => {
                d.keep = true;
                d.reasons.push(format!(
                    "its manifest cannot be read: never deleted by rotation (see: beacon backup verify {}; remove it with: beacon backup delete {})",
                    b.id, b.id
                ));
                continue;
            }
            Verification::Failed => {
                d.reasons.push("failed verification".into());
                continue;
            }
            Verification::Unverified => {
                d.keep = true;
                d.reasons.push(if newest_verified_seen {
                    format!("never verified (run: beacon backup verify {})", b.id)
                } else {
                    "not verified yet".into()
                });
                continue;
            }
            Verification::Verified => {}
        }
        if !newest_verified_seen {
            newest_verified_seen = true;
            d.keep = true;
            d.reasons.push("newest verified backup".into());
        }
        for (i, (name, _, bucket)) in rules.iter().enumerate() {
            if remaining[i] == 0 {
                continue;
            }
            let key = bucket(&b.created_at, nr);
            if last_key[i].as_deref() != Some(key.as_str()) {
                d.keep = true;
                d.reasons.push(if *name == "last" {
                    format!("last {}", policy.last)
                } else {
                    format!("{name} {key}")
                });
                last_key[i] = Some(key);
                remaining[i] -= 1;
            }
        }
        if !d.keep {
            d.reasons.push("not kept by any rule".into());
        }
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid")
    }

    fn candidates(times: &[DateTime<Utc>]) -> Vec<Candidate> {
        times
            .iter()
            .map(|t| Candidate {
                id: t.format("%Y%m%dT%H%M%SZ").to_string(),
                created_at: *t,
                verification: Verification::Verified,
            })
            .collect()
    }

    fn kept(decisions: &[Decision]) -> Vec<String> {
        let mut ids: Vec<String> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id[..8].to_string())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_year_of_daily_backups_keeps_days_weeks_and_month_ends() {
        let times: Vec<_> = (0..365)
            .map(|i| at(2025, 1, 1, 2) + Duration::days(i))
            .collect();
        let policy = KeepPolicy {
            daily: 7,
            weekly: 4,
            monthly: 12,
            ..KeepPolicy::default()
        };
        let decisions = plan(&candidates(&times), &policy);
        // By hand: 25–31 Dec (daily); the newest of ISO weeks 2026-W01
        // (31 Dec), 2025-W52 (28 Dec), W51 (21 Dec), W50 (14 Dec); the last
        // day of each month.
        let expected = [
            "20250131", "20250228", "20250331", "20250430", "20250531", "20250630", "20250731",
            "20250831", "20250930", "20251031", "20251130", "20251214", "20251221", "20251225",
            "20251226", "20251227", "20251228", "20251229", "20251230", "20251231",
        ];
        assert_eq!(kept(&decisions), expected);
        let dec14 = decisions
            .iter()
            .find(|d| d.id.starts_with("20251214"))
            .expect("14 Dec");
        assert_eq!(dec14.reasons, ["weekly 2025-W50"]);
        let newest = &decisions[0];
        assert_eq!(
            newest.reasons,
            [
                "newest verified backup",
                "daily 2025-12-31",
                "weekly 2026-W01",
                "monthly 2025-12"
            ]
        );
        let gone = decisions
            .iter()
            .find(|d| d.id.starts_with("20251213"))
            .expect("13 Dec");
        assert_eq!(
            (gone.keep, gone.reasons.as_slice()),
            (false, &["not kept by any rule".to_string()][..])
        );
    }

    #[test]
    fn hourly_backups_keep_the_newest_hours_and_the_newest_of_each_day() {
        let times: Vec<_> = (0..72)
            .map(|i| at(2026, 3, 10, 0) + Duration::hours(i))
            .collect();
        let policy = KeepPolicy {
            last: 3,
            hourly: 24,
            daily: 2,
            ..KeepPolicy::default()
        };
        let decisions = plan(&candidates(&times), &policy);
        let kept_ids: Vec<&str> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_str())
            .collect();
        // 12 Mar 00:00–23:00 (hourly) and 11 Mar 23:00 (daily).
        assert_eq!(kept_ids.len(), 25);
        assert_eq!(kept_ids[24], "20260311T230000Z");
        assert!(kept_ids[..24].iter().all(|id| id.starts_with("20260312")));
    }

    #[test]
    fn verification_guards() {
        let times: Vec<_> = (0..6)
            .map(|i| at(2026, 3, 1, 0) + Duration::days(i))
            .collect();
        let policy = KeepPolicy {
            last: 1,
            ..KeepPolicy::default()
        };
        let mut c = candidates(&times);
        // Newest first: 6 Mar unverified (in progress), 5 Mar verified,
        // 4 Mar failed, 3 Mar never verified, 2 and 1 Mar verified.
        c[5].verification = Verification::Unverified;
        c[3].verification = Verification::Failed;
        c[2].verification = Verification::Unverified;
        let d = plan(&c, &policy);
        let summary: Vec<(bool, &str)> =
            d.iter().map(|d| (d.keep, d.reasons[0].as_str())).collect();
        assert_eq!(
            summary,
            [
                (true, "not verified yet"),
                (true, "newest verified backup"),
                (false, "failed verification"),
                (
                    true,
                    "never verified (run: beacon backup verify 20260303T000000Z)"
                ),
                (false, "not kept by any rule"),
                (false, "not kept by any rule"),
            ]
        );

        // The newest failed: nothing at all is deleted.
        c[5].verification = Verification::Failed;
        assert!(plan(&c, &policy).iter().all(|d| d.keep));
    }

    #[test]
    fn an_unreadable_manifest_is_kept_and_counts_for_nothing() {
        let times: Vec<_> = (0..4)
            .map(|i| at(2026, 3, 1, 0) + Duration::days(i))
            .collect();
        let policy = KeepPolicy {
            last: 1,
            ..KeepPolicy::default()
        };
        // Newest first: 4 Mar unreadable, 3 Mar verified, 2 Mar unreadable,
        // 1 Mar verified.
        let mut c = candidates(&times);
        c[3].verification = Verification::Unreadable;
        c[1].verification = Verification::Unreadable;
        let d = plan(&c, &policy);
        let summary: Vec<(bool, &str)> = d
            .iter()
            .map(|d| (d.keep, d.reasons[0].split(':').next().unwrap_or("")))
            .collect();
        assert_eq!(
            summary,
            [
                (true, "its manifest cannot be read"),
                (true, "newest verified backup"),
                (true, "its manifest cannot be read"),
                (false, "not kept by any rule"),
            ]
        );
        assert!(d[0].reasons[0].contains("beacon backup delete 20260304T000000Z"));
        // The newest readable backup failed: still nothing is deleted.
        c[2].verification = Verification::Failed;
        assert!(plan(&c, &policy).iter().all(|d| d.keep));
    }

    #[test]
    fn the_newest_verified_backup_survives_a_policy_that_would_not_keep_it() {
        // Only yearly 1, and the newest verified is older than an unverified one.
        let mut c = candidates(&[at(2026, 1, 1, 0), at(2026, 2, 1, 0)]);
        c[1].verification = Verification::Unverified;
        let d = plan(
            &c,
            &KeepPolicy {
                yearly: 1,
                ..KeepPolicy::default()
            },
        );
        assert!(d.iter().all(|d| d.keep), "{d:?}");
        assert!(KeepPolicy::default().is_empty());
        assert!(!KeepPolicy::DEFAULT.is_empty());
    }
}
