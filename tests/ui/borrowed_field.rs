use session_runtime::SessionData;

#[derive(SessionData)]
struct Prefs {
    theme: &'static str,
    tags: Option<&'static [u8]>,
}

fn main() {}
