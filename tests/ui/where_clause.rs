use session_runtime::SessionData;

#[derive(SessionData)]
struct Cart
where
    String: Clone,
{
    items: Vec<String>,
}

fn main() {}
