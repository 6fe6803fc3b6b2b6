//! The processes as their orchestrator sees them: told to stop (SIGTERM), every subsystem
//! stops and the process exits 0. (A subsystem that ends on its own makes the process exit
//! non-zero; `cutover::supervise`'s unit tests show that, as nothing ends one here without a
//! fault injected into the code.)

use crate::harness::{log_dir, wait_for, Deployment};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn an_api_and_a_worker_told_to_stop_exit_0_and_the_worker_says_what_it_held() {
    let mut d = Deployment::new().await;
    d.start_api().await;
    d.start_worker("w");
    let worker = format!("{}-w", d.id);
    // the heartbeat counts held deliveries under the keys the dashboard reads
    wait_for("the worker's first heartbeat", Duration::from_secs(30), || async {
        d.scalar(&format!(
            "SELECT count(*) FROM workers WHERE id = '{worker}' AND in_flight = 0
               AND unacked = '{{\"task\": 0, \"batch\": 0, \"dead\": 0}}'::jsonb"
        ))
        .await
            == 1
    })
    .await;

    for name in ["w", "api"] {
        let (code, took) = d.terminate(name, Duration::from_secs(20)).await;
        assert_eq!(code, Some(0), "{name} exited with {code:?} after {took:?}");
        let log = std::fs::read_to_string(log_dir().join(format!("{}-{name}.log", d.id))).unwrap();
        assert!(!log.contains("ended unexpectedly"), "{name}: {log}");
    }
    assert_eq!(
        d.scalar(&format!("SELECT count(*) FROM workers WHERE id = '{worker}' AND stopped_at IS NOT NULL")).await,
        1
    );
}

/// A port on loopback that nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn up(database_url: &str, amqp_url: &str, listen: u16) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(crate::harness::binary());
    command
        .arg("up")
        .env("CUTOVER_DATABASE_URL", database_url)
        .env("CUTOVER_AMQP_URL", amqp_url)
        .env("CUTOVER_LISTEN", format!("127.0.0.1:{listen}"))
        .env("CUTOVER_QUEUE_PREFIX", format!("it.up{listen}"))
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn up_with_the_database_unreachable_names_it_its_address_and_how_to_start_it() {
    let port = closed_port();
    let url = format!("postgres://postgres:hunter2@127.0.0.1:{port}/cutover");
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        up(&url, "amqp://guest:guest@127.0.0.1:5672/%2f", closed_port()).output(),
    )
    .await
    .expect("`cutover up` gives up within 30 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot reach PostgreSQL at 127.0.0.1:{port} (")), "{stderr}");
    assert!(stderr.contains("bash .ci/services.sh") && stderr.contains("systemctl start postgresql"), "{stderr}");
    assert!(stderr.contains("CUTOVER_DATABASE_URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password is printed: {stderr}");
}

#[tokio::test]
async fn up_with_the_broker_unreachable_says_so_and_serves_all_the_same() {
    let d = Deployment::new().await;
    let (broker_port, listen) = (closed_port(), closed_port());
    let mut child =
        up(&d.database_url, &format!("amqp://guest:s3cret@127.0.0.1:{broker_port}/%2f"), listen).spawn().unwrap();
    let client = reqwest::Client::new();
    wait_for("the api to answer /healthz without a broker", Duration::from_secs(30), || {
        let client = client.clone();
        async move {
            let url = format!("http://127.0.0.1:{listen}/healthz");
            client.get(url).send().await.is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot reach RabbitMQ at 127.0.0.1:{broker_port} (")), "{stderr}");
    assert!(stderr.contains("systemctl start rabbitmq-server") && stderr.contains("CUTOVER_AMQP_URL"), "{stderr}");
    assert!(stderr.contains("accepted work waits in the outbox"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "the password is printed: {stderr}");
}
