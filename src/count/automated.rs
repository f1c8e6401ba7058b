//! Crawlers and automated browsers: they may watch a count, but they are not counted. Checked
//! once, at the handoff, by the `User-Agent` the upgrade carries; the user agent is read there
//! and never stored or logged. The `count_automated` setting turns the check off (local tests
//! drive headless browsers and plain WebSocket clients).

/// Fragments (lowercase) of the user agents of crawlers, link previewers, HTTP libraries and
/// automated or headless browsers.
const MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "archiver",
    "facebookexternalhit",
    "embedly",
    "preview",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "pagespeed",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "curl/",
    "wget/",
    "go-http-client",
    "okhttp",
    "java/",
    "node-fetch",
    "axios/",
    "httpclient",
];

/// Whether a request with this `User-Agent` comes from a crawler or an automated browser. A
/// request without one does too: every browser sends one.
pub fn is_automated(user_agent: Option<&str>) -> bool {
    let Some(agent) = user_agent.map(str::trim).filter(|a| !a.is_empty()) else {
        return true;
    };
    let agent = agent.to_ascii_lowercase();
    MARKERS.iter().any(|m| agent.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_count_and_crawlers_and_automation_do_not() {
        let people = [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        ];
        for agent in people {
            assert!(!is_automated(Some(agent)), "{agent}");
        }
        let machines = [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "python-requests/2.32.3",
            "curl/8.11.0",
            "",
        ];
        for agent in machines {
            assert!(is_automated(Some(agent)), "{agent}");
        }
        assert!(is_automated(None));
    }
}
