//! When to ask a registry again: `Retry-After` values (seconds or an HTTP-date), how long
//! ecrcp is willing to wait for one, and the retry policies of registry requests and blob
//! copies (kept by [`crate::retry`]). Pure; the client does the waiting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::retry::{Jitter, OnProgress, Policy};

/// Tries of one registry request (a HEAD, a manifest, an upload start): nothing short of an
/// answer is progress for it, so a registry that fails this often in a row is down.
pub const REQUEST_ATTEMPTS: u32 = 6;
/// The longest pause between two tries, whatever the backoff has grown to.
pub const LONGEST_BACKOFF: Duration = Duration::from_secs(8);

/// For one request: [`REQUEST_ATTEMPTS`] tries, two minutes, from a quarter second.
pub fn request_policy() -> Policy {
    Policy {
        first_wait: Duration::from_millis(250),
        longest_wait: LONGEST_BACKOFF,
        fruitless: REQUEST_ATTEMPTS,
        budget: Duration::from_secs(120),
        jitter: Jitter::UpToAQuarterMore,
        progress: OnProgress::StartsOver,
    }
}

/// For one blob's copy (each try opens a session and streams the blob): four tries in a row
/// without progress, a quarter of an hour of failing at most.
pub fn blob_policy() -> Policy {
    Policy {
        first_wait: Duration::from_millis(500),
        fruitless: 4,
        budget: Duration::from_secs(15 * 60),
        ..request_policy()
    }
}

/// The pauses before a manifest PUT refused for a blob the registry does not see yet
/// (`MANIFEST_BLOB_UNKNOWN`) is asked again: a second and a half in all.
pub const UNKNOWN_BLOB_PAUSES: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(1250)];

/// The longest `Retry-After` ecrcp waits out within a run. A longer one ends the attempt
/// with the wait in the message: a sync defers the image to a later run instead.
pub const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// The wait a `Retry-After` value asks for, measured from `now`: delay-seconds or an
/// HTTP-date. A date already past asks for no wait; anything unreadable is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }
    let when = http_date(value)?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A wait as people read it: `42 s`, `15 min`, `6 h 0 min`.
pub fn describe_wait(wait: Duration) -> String {
    let seconds = wait.as_secs();
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7200 => format!("{} min", seconds.div_ceil(60)),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// A moment as people read it, in UTC: `07:42 UTC` today, with the date (`2026-11-30 07:42
/// UTC`) when it is not today.
pub fn describe_clock(when: SystemTime) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let seconds = when.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let clock = format!("{:02}:{:02} UTC", seconds % 86_400 / 3600, seconds % 3600 / 60);
    if seconds / 86_400 == now / 86_400 {
        return clock;
    }
    let (year, month, day) = civil_date(seconds / 86_400);
    format!("{year}-{month:02}-{day:02} {clock}")
}

/// The calendar date of a day counted from 1970-01-01: the inverse of `days_since_epoch`,
/// with years counted from March so that the leap day comes last.
fn civil_date(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let (era, day_of_era) = (shifted / 146_097, shifted % 146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Reads the three HTTP-date forms RFC 9110 makes recipients accept: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`). In all three the month is a name, the time holds colons, and
/// the day comes before the year.
fn http_date(value: &str) -> Option<SystemTime> {
    let mut month = None;
    let mut clock = None;
    let mut numbers = Vec::new();
    for token in value.split([' ', ',', '-']).filter(|token| !token.is_empty()) {
        if let Some(index) = MONTHS.iter().position(|name| *name == token) {
            month = Some(index as u64 + 1);
        } else if token.contains(':') {
            clock = Some(token);
        } else if token.bytes().all(|byte| byte.is_ascii_digit()) {
            numbers.push(token.parse::<u64>().ok()?);
        } else if !token.bytes().all(|byte| byte.is_ascii_alphabetic()) {
            return None;
        }
    }
    let [day, year] = numbers[..] else {
        return None;
    };
    // RFC 850's two-digit years.
    let year = match year {
        0..70 => year + 2000,
        70..100 => year + 1900,
        _ => year,
    };
    let mut parts = clock?.split(':').map(|part| part.parse::<u64>().ok());
    let (Some(Some(hour)), Some(Some(minute)), Some(Some(second)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if !(1..=31).contains(&day) || year < 1970 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let seconds = days_since_epoch(year, month?, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Days from 1970-01-01 to a date in the proleptic Gregorian calendar (years from 1970 on),
/// counting years from March so that the leap day comes last.
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let (era, year_of_era) = (year / 400, year % 400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_days_since_the_epoch() {
        for (year, month, day) in [
            (1970, 1, 1),
            (2000, 2, 29),
            (2024, 12, 31),
            (2026, 3, 1),
            (2100, 2, 28),
        ] {
            assert_eq!(civil_date(days_since_epoch(year, month, day)), (year, month, day));
        }
        let later =
            UNIX_EPOCH + Duration::from_secs(days_since_epoch(2100, 2, 28) * 86_400 + 7 * 3600 + 42 * 60);
        assert_eq!(describe_clock(later), "2100-02-28 07:42 UTC");
    }

    #[test]
    fn retry_after_reads_seconds_and_every_http_date_form() {
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT; "now" is two minutes before it.
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 120);
        let cases = [
            ("120", Some(120)),
            (" 0 ", Some(0)),
            ("3600", Some(3600)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(120)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(120)),
            ("Sun Nov  6 08:49:37 1994", Some(120)),
            ("Sun, 06 Nov 1994 08:47:37 GMT", Some(0)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
            ("Sun, 06 Nov 1994 09:49:37 GMT", Some(3720)),
            ("Mon, 07 Nov 1994 08:49:37 GMT", Some(86_520)),
            ("-5", None),
            ("1.5", None),
            ("", None),
            ("soon", None),
            ("Sun, 06 Nov 1994 24:00:00 GMT", None),
            ("Sun, 32 Nov 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 08:49 GMT", None),
            ("Sun, 06 Foo 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 08:49:37 +0000", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_retry_after(value, now),
                expected.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }

    #[test]
    fn http_dates_land_on_the_right_second() {
        let cases = [
            ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
            ("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777),
            ("Fri, 31 Dec 1999 23:59:59 GMT", 946_684_799),
            ("Tue, 29 Feb 2000 12:00:00 GMT", 951_825_600),
            ("Fri, 27 Nov 2026 18:47:15 GMT", 1_795_805_235),
        ];
        for (value, seconds) in cases {
            assert_eq!(
                http_date(value),
                Some(UNIX_EPOCH + Duration::from_secs(seconds)),
                "{value}"
            );
        }
    }

    #[test]
    fn waits_read_as_people_say_them() {
        let cases = [
            (0, "0 s"),
            (42, "42 s"),
            (119, "119 s"),
            (120, "2 min"),
            (900, "15 min"),
            (21_600, "6 h 0 min"),
        ];
        for (seconds, text) in cases {
            assert_eq!(describe_wait(Duration::from_secs(seconds)), text);
        }
    }
}
