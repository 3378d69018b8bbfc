//! Runs the embedding example on 127.0.0.1:3000.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let agent = embedding_example::build_agent(std::env::var("OPENAI_API_KEY").ok())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, embedding_example::app(agent)).await?;
    Ok(())
}
