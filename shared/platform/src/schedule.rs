//! The schedule expressions a [`crate::topology::Trigger::Schedule`] function may carry: the
//! subset of EventBridge's that the local runtime's scheduler also runs, so that a job fires
//! at the same times locally and on AWS. `rate(<n> minute[s]|hour[s]|day[s])` fires every
//! period; `cron(<minute> <hour> * * ? *)` fires once a day at that UTC time (09:00 in
//! Korea is `cron(0 0 * * ? *)`).

use chrono::{DateTime, Duration, NaiveTime, Utc};

/// A parsed schedule expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every period.
    Rate(Duration),
    /// Once a day at this UTC time.
    Daily(NaiveTime),
}

impl Schedule {
    /// Parses `rate(…)` or `cron(…)`; anything else is an error saying what is accepted.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let bad = || format!("schedule {expression:?} is not rate(<n> minute[s]|hour[s]|day[s]) nor cron(<minute> <hour> * * ? *)");
        if let Some(inner) = expression.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            let (n, unit) = inner.split_once(' ').ok_or_else(bad)?;
            let n: i64 = n.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
            let period = match (unit, n) {
                ("minute", 1) | ("minutes", 2..) => Duration::minutes(n),
                ("hour", 1) | ("hours", 2..) => Duration::hours(n),
                ("day", 1) | ("days", 2..) => Duration::days(n),
                _ => return Err(bad()),
            };
            return Ok(Self::Rate(period));
        }
        if let Some(inner) = expression.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            let fields: Vec<&str> = inner.split(' ').collect();
            let [minute, hour, "*", "*", "?", "*"] = fields.as_slice() else {
                return Err(bad());
            };
            let minute: u32 = minute.parse().map_err(|_| bad())?;
            let hour: u32 = hour.parse().map_err(|_| bad())?;
            return NaiveTime::from_hms_opt(hour, minute, 0).map(Self::Daily).ok_or_else(bad);
        }
        Err(bad())
    }

    /// The first time after `after` that the schedule fires.
    pub fn next_after(self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Rate(period) => after + period,
            Self::Daily(at) => {
                let today = after.date_naive().and_time(at).and_utc();
                if today > after { today } else { today + Duration::days(1) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn rates_and_daily_crons_parse_and_fire_when_eventbridge_would() {
        assert_eq!(Schedule::parse("rate(1 minute)"), Ok(Schedule::Rate(Duration::minutes(1))));
        assert_eq!(Schedule::parse("rate(5 minutes)"), Ok(Schedule::Rate(Duration::minutes(5))));
        let nine_in_korea = Schedule::parse("cron(0 0 * * ? *)").expect("daily");
        assert_eq!(nine_in_korea.next_after(at("2026-12-01T23:59:00Z")), at("2026-12-02T00:00:00Z"));
        assert_eq!(nine_in_korea.next_after(at("2026-12-02T00:00:00Z")), at("2026-12-03T00:00:00Z"));
    }

    #[test]
    fn what_the_local_scheduler_cannot_run_is_refused() {
        for bad in [
            "rate(1 minutes)",
            "rate(2 minute)",
            "rate(0 minutes)",
            "cron(0 0 1 * ? *)",
            "cron(61 0 * * ? *)",
            "at(2026-12-01)",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}
