use session_runtime::SessionData;

#[derive(SessionData)]
#[session(version = 0, colour = "red")]
struct Cart {
    #[session(rename = "__x")]
    items: Vec<String>,
    #[session(bogus)]
    theme: String,
}

// The schema is still usable, so its mistakes do not cascade into errors here.
fn items(cart: &Cart) -> usize {
    cart.items.len()
}

fn main() {}
