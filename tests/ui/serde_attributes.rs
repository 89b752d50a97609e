use session_runtime::SessionData;

// serde's attributes are read too: the ones with a session meaning are honoured, the others
// are errors rather than silently ignored.
#[derive(SessionData)]
#[serde(rename_all = "camelCase")]
struct Prefs {
    #[serde(with = "custom")]
    theme: String,
    #[serde(rename = "l")]
    #[session(rename = "lang")]
    language: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nick: Option<String>,
}

fn main() {}
