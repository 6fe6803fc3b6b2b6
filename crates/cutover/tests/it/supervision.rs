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
