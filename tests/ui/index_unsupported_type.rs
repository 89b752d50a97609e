// An indexed field's type must name sessions: a list of roles cannot.
use session_runtime::SessionData;

#[derive(SessionData)]
struct Auth {
    #[session(index)]
    roles: Vec<String>,
    #[session(index)]
    score: Option<f64>,
}

fn main() {}
