// A private indexed field's index is as private as the field: code outside its module
// cannot list or revoke sessions by it.
mod auth {
    use session_runtime::SessionData;

    #[derive(SessionData)]
    pub struct Auth {
        #[session(index)]
        pub user_id: Option<u64>,
        #[session(index)]
        tenant: Option<u64>,
    }
}

async fn list(auth: session_runtime::TypedSession<auth::Auth>) {
    let _ = auth.sessions(auth::Auth::by_user_id()).await;
    let _ = auth.sessions(auth::Auth::by_tenant()).await;
}

fn main() {}
