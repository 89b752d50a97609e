// A private field's accessors are as private as the field: code outside its module cannot
// set it through the session, even though the struct is public.
mod auth {
    use session_runtime::SessionData;

    #[derive(SessionData)]
    pub struct Auth {
        pub user: Option<String>,
        is_admin: bool,
    }
}

fn promote(mut auth: session_runtime::TypedSession<auth::Auth>) {
    auth.set_user(Some("mallory".into()));
    auth.set_is_admin(true);
    let _ = auth.is_admin();
}

fn main() {}
