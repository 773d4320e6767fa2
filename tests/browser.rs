//! A real headless Chromium for the dashboard's tests: chromedriver on a free port (installed
//! from the distribution's packages when missing and allowed), a WebDriver session through
//! fantoccini, and the few gestures the tests use (sign in, click and wait for the next page,
//! fill a field, read the page, save a screenshot to `target/dashboard-screenshots/`).

use crate::TestApp;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// chromedriver on a free port, and a headless Chromium session through it.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// chromedriver's path, or a failure that says how to get it (a test never installs anything).
fn chromedriver() -> String {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("chromedriver")).find(|path| path.exists()))
        .map(|path| path.display().to_string())
        .expect(
            "the dashboard tests need Chromium and chromedriver: run `cargo xtask test` (it installs them), or \
             apt-get install chromium chromium-driver",
        )
}

pub async fn browser() -> Browser {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let driver = Command::new(chromedriver())
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let capabilities = json!({ "goog:chromeOptions": {
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]
    }});
    let capabilities = capabilities.as_object().unwrap().clone();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        // Plain HTTP to chromedriver on loopback: no TLS stack for the tests' own client.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
            Ok(client) => return Browser { client, driver },
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("no WebDriver session from chromedriver on {url}");
}

pub async fn screenshot(browser: &Browser, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

pub async fn sign_in(browser: &Browser, app: &TestApp, login: &str, password: &str) {
    browser.client.goto(&app.url("/dashboard")).await.unwrap();
    browser.client.find(Locator::Css("#login")).await.unwrap().send_keys(login).await.unwrap();
    browser.client.find(Locator::Css("#password")).await.unwrap().send_keys(password).await.unwrap();
    click_and_wait(browser, "Sign in").await;
}

/// Clicks the button labelled `label` and waits for the page it leads to.
pub async fn click_and_wait(browser: &Browser, label: &str) {
    navigate_by(browser, Locator::XPath(&format!("//button[text()='{label}']")), label).await;
}

/// Follows the link labelled `label` and waits for the page it leads to.
pub async fn follow(browser: &Browser, label: &str) {
    navigate_by(browser, Locator::LinkText(label), label).await;
}

/// Clicks what `locator` finds and waits until the browser replaced the page (the old page's
/// body goes stale).
pub async fn navigate_by(browser: &Browser, locator: Locator<'_>, label: &str) {
    let old = browser.client.find(Locator::Css("body")).await.unwrap();
    browser.client.find(locator).await.unwrap().click().await.unwrap();
    for _ in 0..200 {
        if old.text().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clicking {label:?} led nowhere");
}

pub async fn text(browser: &Browser) -> String {
    browser.client.find(Locator::Css("body")).await.unwrap().text().await.unwrap()
}

pub async fn fill(browser: &Browser, css: &str, text: &str) {
    let field = browser.client.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

pub async fn click(browser: &Browser, css: &str) {
    browser.client.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

/// The value of the raw key field of the page (a key's one showing).
pub async fn shown_key(browser: &Browser) -> String {
    value_of(browser, "#raw-key").await
}

/// The value of the field `css` (e.g. a one-time token's read-only input).
pub async fn value_of(browser: &Browser, css: &str) -> String {
    browser.client.find(Locator::Css(css)).await.unwrap().prop("value").await.unwrap().unwrap_or_default()
}

/// The session cookie the browser holds, as a `Cookie` header value.
pub async fn session_cookie(browser: &Browser) -> String {
    let cookies = browser.client.get_all_cookies().await.unwrap();
    let cookie = cookies.iter().find(|c| c.name() == "visa_session").expect("the session cookie");
    format!("visa_session={}", cookie.value())
}
