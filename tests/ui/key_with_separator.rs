use session_runtime::SessionData;

#[derive(SessionData)]
#[session(namespace = "my.cart")]
struct Cart {
    #[session(rename = "user.id")]
    user_id: u64,
}

fn main() {}
