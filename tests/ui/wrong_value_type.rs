use session_runtime::SessionData;

#[derive(SessionData)]
#[session(version = "2")]
struct Cart {
    #[session(rename = th)]
    theme: String,
}

fn main() {}
