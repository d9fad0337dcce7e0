//! The words, in English and Vietnamese, through Project Fluent: one bundle
//! per language, built once from `locales/*.ftl` (compiled into the binary),
//! shared by the page, the CLI's notices and the notifications.
//!
//! Which language (see [`choose`]): the person's choice on the page (a
//! cookie) first, then `[ui] language` in the config, then the browser's
//! `Accept-Language`, then the system's `LC_ALL` / `LC_MESSAGES` / `LANG`,
//! then English. The CLI and the notifications have no cookie and no
//! browser: for them it is `[ui] language`, then the system's, then English.

use std::borrow::Cow;
use std::sync::OnceLock;

pub use fluent_bundle::FluentValue;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use meshtrace_node::config::UiLanguage;

/// A language the page speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English.
    En,
    /// Vietnamese.
    Vi,
}

/// The English messages.
pub const EN_FTL: &str = include_str!("../locales/en.ftl");
/// The Vietnamese messages.
pub const VI_FTL: &str = include_str!("../locales/vi.ftl");

/// Longest `Accept-Language` header read (bytes); the rest is ignored.
pub const MAX_ACCEPT_LANGUAGE_LEN: usize = 512;

impl Lang {
    /// Every language, in the order the settings page lists them.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Vi];

    /// The language's tag (`"en"`, `"vi"`), as in cookies and the HTML
    /// `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Vi => "vi",
        }
    }

    /// The language of a tag or locale name (`"vi"`, `"vi-VN"`,
    /// `"vi_VN.UTF-8"`, `"EN-gb"`), when the page speaks it.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag
            .trim()
            .split(['-', '_', '.', '@'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "vi" => Some(Lang::Vi),
            _ => None,
        }
    }

    /// The language of a config setting.
    pub fn from_config(l: UiLanguage) -> Lang {
        match l {
            UiLanguage::En => Lang::En,
            UiLanguage::Vi => Lang::Vi,
        }
    }

    fn ftl(self) -> &'static str {
        match self {
            Lang::En => EN_FTL,
            Lang::Vi => VI_FTL,
        }
    }
}

struct Bundles {
    en: FluentBundle<FluentResource>,
    vi: FluentBundle<FluentResource>,
}

fn bundle(lang: Lang) -> FluentBundle<FluentResource> {
    let id: unic_langid::LanguageIdentifier = lang
        .code()
        .parse()
        .unwrap_or_else(|_| unic_langid::LanguageIdentifier::default());
    let mut b = FluentBundle::new_concurrent(vec![id]);
    // Plain text: no Unicode isolation marks around placeables (they show
    // up in terminals and notifications).
    b.set_use_isolating(false);
    // A syntax error in a shipped file is a bug the tests catch; the
    // messages that did parse are still used.
    let res = FluentResource::try_new(lang.ftl().to_owned()).unwrap_or_else(|(res, _)| res);
    let _ = b.add_resource(res);
    b
}

fn bundles() -> &'static Bundles {
    static B: OnceLock<Bundles> = OnceLock::new();
    B.get_or_init(|| Bundles {
        en: bundle(Lang::En),
        vi: bundle(Lang::Vi),
    })
}

/// The words of one language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tr(pub Lang);

impl Tr {
    /// The language.
    pub fn lang(self) -> Lang {
        self.0
    }

    /// Message `id` without arguments.
    pub fn t(self, id: &str) -> String {
        self.args(id, &[])
    }

    /// Message `id` with named arguments. A missing message (a bug: a test
    /// checks every id used exists) shows its id.
    pub fn args(self, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
        let b = match self.0 {
            Lang::En => &bundles().en,
            Lang::Vi => &bundles().vi,
        };
        let Some(pattern) = b.get_message(id).and_then(|m| m.value()) else {
            tracing::error!(id, lang = self.0.code(), "missing message");
            return id.to_owned();
        };
        let mut fa = FluentArgs::new();
        for (k, v) in args {
            fa.set(*k, v.clone());
        }
        let mut errors = Vec::new();
        let text: Cow<'_, str> = b.format_pattern(pattern, Some(&fa), &mut errors);
        if !errors.is_empty() {
            tracing::error!(id, lang = self.0.code(), "message arguments missing");
        }
        text.into_owned()
    }

    /// "1 December" / "ngày 1 tháng 12" for a protocol day.
    pub fn day(self, day: meshtrace_node::protocol::Day) -> String {
        let (_, m, d) = day.to_civil();
        self.args("date-day-month", &[("day", d.into()), ("month", m.into())])
    }

    /// A day written `YYYY-MM-DD` (as the control replies carry it), in
    /// words; the text itself when it is not such a date.
    pub fn day_text(self, ymd: &str) -> String {
        match parse_ymd(ymd) {
            Some((_, m, d)) => {
                self.args("date-day-month", &[("day", d.into()), ("month", m.into())])
            }
            None => ymd.to_owned(),
        }
    }

    /// A UNIX time as "1 December, 14:05 UTC".
    pub fn time(self, unix_seconds: u64) -> String {
        let t = meshtrace_node::protocol::UnixTime(unix_seconds);
        let s = unix_seconds % 86_400;
        let hm = format!("{:02}:{:02}", s / 3600, s / 60 % 60);
        self.args(
            "date-time",
            &[("date", self.day(t.day()).into()), ("time", hm.into())],
        )
    }

    /// One day of an exposure: "about 25 minutes within 2 m on 1
    /// December". `estimated_minutes` is rounded to whole minutes.
    pub fn exposure_day(self, ymd: &str, estimated_minutes: f64) -> String {
        let date = self.day_text(ymd);
        let minutes = if estimated_minutes.is_finite() {
            estimated_minutes.round()
        } else {
            0.0
        };
        if minutes < 1.0 {
            return self.args("exposure-day-short", &[("date", date.into())]);
        }
        self.args(
            "exposure-day",
            &[("minutes", (minutes as u64).into()), ("date", date.into())],
        )
    }
}

/// `YYYY-MM-DD` → (year, month, day).
fn parse_ymd(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split('-');
    let y = it.next()?.parse().ok()?;
    let m = it.next()?.parse().ok()?;
    let d = it.next()?.parse().ok()?;
    (it.next().is_none() && (1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

/// The first language the browser asks for that the page speaks, by
/// `q` weight (ties keep the header's order); `q=0` means "not this one".
pub fn from_accept_language(header: &str) -> Option<Lang> {
    let header = match header.char_indices().nth(MAX_ACCEPT_LANGUAGE_LEN) {
        Some((i, _)) => &header[..i],
        None => header,
    };
    let mut best: Option<(f32, Lang)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if !(q > 0.0 && q <= 1.0) {
            continue;
        }
        if let Some(lang) = Lang::from_tag(tag)
            && best.is_none_or(|(bq, _)| q > bq)
        {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l)
}

/// The system's language from `LC_ALL`, `LC_MESSAGES` and `LANG` (the
/// first one set and not empty decides, as in POSIX), when the page speaks
/// it.
pub fn from_env() -> Option<Lang> {
    from_env_values(
        std::env::var("LC_ALL").ok().as_deref(),
        std::env::var("LC_MESSAGES").ok().as_deref(),
        std::env::var("LANG").ok().as_deref(),
    )
}

/// [`from_env`] on given values (for tests).
pub fn from_env_values(
    lc_all: Option<&str>,
    lc_messages: Option<&str>,
    lang: Option<&str>,
) -> Option<Lang> {
    [lc_all, lc_messages, lang]
        .into_iter()
        .flatten()
        .find(|v| !v.is_empty())
        .and_then(Lang::from_tag)
}

/// What decides the language of a page, in order of precedence.
#[derive(Clone, Copy, Debug, Default)]
pub struct LangSources<'a> {
    /// The person's choice on the settings page (cookie).
    pub cookie: Option<Lang>,
    /// `[ui] language`.
    pub config: Option<Lang>,
    /// The browser's `Accept-Language` header.
    pub accept_language: Option<&'a str>,
    /// The system's locale ([`from_env`]).
    pub system: Option<Lang>,
}

/// The language: cookie, then `[ui] language`, then `Accept-Language`, then
/// the system's, then English.
pub fn choose(s: LangSources<'_>) -> Lang {
    s.cookie
        .or(s.config)
        .or_else(|| s.accept_language.and_then(from_accept_language))
        .or(s.system)
        .unwrap_or(Lang::En)
}

/// The language of the CLI and the notifications: `[ui] language`, then
/// the system's, then English.
pub fn cli_lang(config: Option<UiLanguage>) -> Lang {
    choose(LangSources {
        config: config.map(Lang::from_config),
        system: from_env(),
        ..LangSources::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_days_read_naturally_in_both_languages() {
        assert_eq!(
            Tr(Lang::En).exposure_day("2026-12-01", 24.6),
            "about 25 minutes within 2 m on 1 December"
        );
        assert_eq!(
            Tr(Lang::Vi).exposure_day("2026-12-01", 24.6),
            "khoảng 25 phút trong phạm vi 2 mét vào ngày 1 tháng 12"
        );
        assert_eq!(
            Tr(Lang::En).exposure_day("2026-03-09", 1.2),
            "about 1 minute within 2 m on 9 March"
        );
        assert_eq!(
            Tr(Lang::En).exposure_day("2026-03-09", 0.2),
            "less than a minute within 2 m on 9 March"
        );
    }

    #[test]
    fn times_are_written_in_words() {
        // 2026-12-01 14:05 UTC
        let t = 1_796_133_900;
        assert_eq!(Tr(Lang::En).time(t), "1 December, 14:05 UTC");
        assert_eq!(Tr(Lang::Vi).time(t), "ngày 1 tháng 12, 14:05 UTC");
    }

    #[test]
    fn accept_language_picks_the_best_weighted_language_spoken() {
        assert_eq!(
            from_accept_language("vi-VN,vi;q=0.9,en;q=0.8"),
            Some(Lang::Vi)
        );
        assert_eq!(
            from_accept_language("fr-FR, en;q=0.5, vi;q=0.7"),
            Some(Lang::Vi)
        );
        assert_eq!(from_accept_language("de, fr"), None);
        assert_eq!(from_accept_language("vi;q=0, en;q=0.1"), Some(Lang::En));
        assert_eq!(from_accept_language("vi;q=abc"), None);
        assert_eq!(from_accept_language(""), None);
    }

    #[test]
    fn the_system_locale_follows_posix_precedence() {
        assert_eq!(
            from_env_values(None, None, Some("vi_VN.UTF-8")),
            Some(Lang::Vi)
        );
        assert_eq!(
            from_env_values(Some("en_GB.UTF-8"), None, Some("vi_VN.UTF-8")),
            Some(Lang::En)
        );
        assert_eq!(
            from_env_values(Some(""), Some("vi_VN"), Some("en_US")),
            Some(Lang::Vi)
        );
        assert_eq!(from_env_values(None, None, Some("C.UTF-8")), None);
        assert_eq!(from_env_values(None, None, None), None);
    }

    #[test]
    fn the_language_order_is_cookie_config_browser_system_english() {
        let all = LangSources {
            cookie: Some(Lang::Vi),
            config: Some(Lang::En),
            accept_language: Some("en"),
            system: Some(Lang::En),
        };
        assert_eq!(choose(all), Lang::Vi);
        let no_cookie = LangSources {
            cookie: None,
            config: Some(Lang::Vi),
            ..all
        };
        assert_eq!(choose(no_cookie), Lang::Vi);
        let browser = LangSources {
            cookie: None,
            config: None,
            accept_language: Some("vi"),
            system: Some(Lang::En),
        };
        assert_eq!(choose(browser), Lang::Vi);
        let system = LangSources {
            accept_language: Some("de"),
            system: Some(Lang::Vi),
            ..browser
        };
        assert_eq!(choose(system), Lang::Vi);
        assert_eq!(choose(LangSources::default()), Lang::En);
    }
}
