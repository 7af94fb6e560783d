//! The overview's workflow usage, against a local HTTP page and the test's own database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pgqrs::workflow::Workflow;
use pgqrs_examples::data_pipeline;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves one three-line page to every request; returns its URL.
async fn serve_page() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/report.txt", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let body = "alpha\nbeta\ngamma\n";
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    url
}

#[sqlx::test(migrations = false)]
async fn the_overview_workflow_runs_as_written(pool: PgPool) -> anyhow::Result<()> {
    let config = pgqrs::Config::from_pool(pool.clone());
    pgqrs::Admin::new(&config).await?.install().await?;
    let url = serve_page().await;
    let url = url.as_str();

    // Usage, as in the overview:
    let workflow = Workflow::create(pool, "data_pipeline", &url).await?;
    let result = data_pipeline(&workflow, url).await?;

    assert_eq!(result, "Processed 3 lines");
    let steps: i64 = sqlx::query_scalar("SELECT count(*) FROM pgqrs.steps")
        .fetch_one(&config.pool().await?)
        .await?;
    assert_eq!(steps, 2);
    Ok(())
}
