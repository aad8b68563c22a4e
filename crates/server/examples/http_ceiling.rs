//! The HTTP ceiling for `bench/run.sh`: the same stack Portcullis serves with (tokio multi-thread runtime,
//! hyper via `axum::serve`, an axum router) answering every `GET` with a fixed body and every `POST` with another
//! fixed body after reading the request body, and doing nothing else: no middleware, no authentication, no
//! JSON. Whatever Portcullis does per request is measured against this.
//!
//! `cargo run --release -p portcullis-server --example http_ceiling -- GET_BODY_FILE POST_BODY_FILE` prints
//! `listening on http://127.0.0.1:PORT` like `portcullis serve` and serves until killed.

use axum::body::Bytes;
use axum::http::header;
use axum::routing::any;
use axum::Router;
use std::sync::Arc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(get_file), Some(post_file)) = (args.next(), args.next()) else {
        eprintln!("usage: http_ceiling GET_BODY_FILE POST_BODY_FILE");
        std::process::exit(2);
    };
    let get_body = Bytes::from(std::fs::read(get_file)?);
    let post_body = Bytes::from(std::fs::read(post_file)?);
    let bodies = Arc::new((get_body, post_body));
    let app = Router::new().fallback(any(move |method: axum::http::Method, _body: Bytes| {
        let bodies = bodies.clone();
        async move {
            let body = if method == axum::http::Method::POST {
                bodies.1.clone()
            } else {
                bodies.0.clone()
            };
            ([(header::CONTENT_TYPE, "application/json")], body)
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
