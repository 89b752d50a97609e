use session_runtime::SessionData;

struct Yaml;

#[derive(SessionData)]
#[session(codec = Yaml)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
