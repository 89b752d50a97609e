use session_runtime::SessionData;

#[derive(SessionData)]
struct Prefs {
    theme: String,
    set_theme: bool,
}

fn main() {}
