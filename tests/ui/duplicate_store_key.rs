use session_runtime::SessionData;

#[derive(SessionData)]
struct Cart {
    theme: String,
    #[session(rename = "theme")]
    colour: String,
}

fn main() {}
