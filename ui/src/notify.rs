//! Desktop notifications (opt-in, `[ui] notify = true`): on a new exposure,
//! or when one becomes high risk, a notification through the freedesktop
//! notification service (D-Bus), in the chosen language. Failing to notify
//! (no session bus, no notification service) is logged once, at warn, and
//! never stops the node; the `on_exposure` hook runs either way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use meshtrace_node::control::ExposureReply;

use crate::i18n::Tr;

/// Most exposures remembered (one per report; more than the store keeps
/// in its retention window in any plausible week).
pub const MAX_REMEMBERED_EXPOSURES: usize = 10_000;

/// A notification's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The title.
    pub title: String,
    /// The text: the days in words, then where to look.
    pub body: String,
    /// A high-risk exposure (shown as urgent).
    pub high_risk: bool,
}

/// The notification for an exposure.
pub fn notification(tr: Tr, e: &ExposureReply) -> Notification {
    let title = if e.high_risk {
        tr.t("notify-high-title")
    } else {
        tr.t("notify-low-title")
    };
    let mut lines: Vec<String> = e
        .days
        .iter()
        .map(|d| tr.exposure_day(&d.day, d.estimated_minutes))
        .collect();
    lines.push(tr.t("notify-open"));
    Notification {
        title,
        body: lines.join("\n"),
        high_risk: e.high_risk,
    }
}

/// Decides which exposures deserve a notification (a new one, or one that
/// became high risk) and sends it.
#[derive(Debug)]
pub struct Notifier {
    tr: Tr,
    enabled: bool,
    /// Report → was high risk when last seen.
    seen: Mutex<HashMap<String, bool>>,
    failure_logged: AtomicBool,
}

impl Notifier {
    /// A notifier speaking `tr`; `enabled` is `[ui] notify`.
    pub fn new(tr: Tr, enabled: bool) -> Notifier {
        Notifier {
            tr,
            enabled,
            seen: Mutex::new(HashMap::new()),
            failure_logged: AtomicBool::new(false),
        }
    }

    /// Remembers exposures already known (at start), so that they are not
    /// announced again.
    pub fn seed(&self, known: &[ExposureReply]) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for e in known.iter().take(MAX_REMEMBERED_EXPOSURES) {
            seen.insert(e.report.clone(), e.high_risk);
        }
    }

    /// The notification `e` deserves, if any: when it is new, or was low
    /// risk and is now high. Remembers it.
    pub fn consider(&self, e: &ExposureReply) -> Option<Notification> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let before = seen.get(&e.report).copied();
        let raised = match before {
            None => true,
            Some(was_high) => e.high_risk && !was_high,
        };
        if before.is_some() || seen.len() < MAX_REMEMBERED_EXPOSURES {
            seen.insert(e.report.clone(), e.high_risk || before == Some(true));
        }
        raised.then(|| notification(self.tr, e))
    }

    /// Called for each new or updated exposure: notifies when it deserves
    /// it and notifications are on. Sending happens on its own thread (D-Bus
    /// calls block).
    pub fn on_exposure(self: &std::sync::Arc<Self>, e: &ExposureReply) {
        let Some(n) = self.consider(e) else {
            return;
        };
        if !self.enabled {
            return;
        }
        let me = self.clone();
        std::thread::spawn(move || {
            if let Err(err) = show(&n)
                && !me.failure_logged.swap(true, Ordering::Relaxed)
            {
                tracing::warn!(
                    error = %err,
                    "cannot show a desktop notification (is a notification service running?); \
                     exposures are still on the page and in `meshtrace exposures`"
                );
            }
        });
    }
}

fn show(n: &Notification) -> Result<(), String> {
    notify_rust::Notification::new()
        .appname("meshtrace")
        .summary(&n.title)
        .body(&n.body)
        .urgency(if n.high_risk {
            notify_rust::Urgency::Critical
        } else {
            notify_rust::Urgency::Normal
        })
        .show()
        .map(|_| ())
        .map_err(|e| e.to_string().replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;
    use meshtrace_node::control::ExposureDayReply;

    fn exposure(report: &str, high: bool, minutes: f64) -> ExposureReply {
        ExposureReply {
            report: report.into(),
            high_risk: high,
            found_at: 0,
            found_at_utc: String::new(),
            updated_at: 0,
            encounters: 1,
            days: vec![ExposureDayReply {
                day: "2026-12-01".into(),
                weighted_minutes: minutes,
                close_minutes: minutes,
                estimated_minutes: minutes,
                contacts: 1,
                high_risk: high,
            }],
        }
    }

    #[test]
    fn new_and_raised_exposures_notify_and_nothing_else_does() {
        let n = Notifier::new(Tr(Lang::En), false);
        n.seed(&[exposure("old", true, 30.0)]);
        assert_eq!(n.consider(&exposure("old", true, 40.0)), None);
        let first = n.consider(&exposure("a", false, 5.0)).unwrap();
        assert_eq!(first.title, "A brief contact has tested positive");
        assert_eq!(n.consider(&exposure("a", false, 8.0)), None);
        let raised = n.consider(&exposure("a", true, 25.0)).unwrap();
        assert_eq!(raised.title, "Close contact with an infected person");
        assert!(
            raised
                .body
                .starts_with("about 25 minutes within 2 m on 1 December\n")
        );
        assert_eq!(n.consider(&exposure("a", true, 30.0)), None);
        // Going back down is not news.
        assert_eq!(n.consider(&exposure("a", false, 30.0)), None);
    }

    #[test]
    fn the_text_is_in_the_chosen_language() {
        let v = notification(Tr(Lang::Vi), &exposure("b", true, 25.0));
        assert_eq!(v.title, "Tiếp xúc gần với người nhiễm bệnh");
        assert_eq!(
            v.body,
            "khoảng 25 phút trong phạm vi 2 mét vào ngày 1 tháng 12\n\
             Mở meshtrace để xem bạn cần làm gì."
        );
    }
}
