//! Servers of a test's own, for faults that stop, fill or cluster a server: a Postgres cluster
//! (initdb into a temporary directory, on a free port) with a tablespace on a size-limited
//! tmpfs, and RabbitMQ nodes (on free ports, clustered when asked). Never the machine's shared
//! services. Each is stopped and its files removed when dropped.
//!
//! Both need what a CI machine has: the Postgres and RabbitMQ server packages (`.ci/services.sh`
//! installs them) and, for the tmpfs, root (`mount`); Postgres refuses to run as root, so as
//! root its processes run as the `postgres` user.

use sqlx::Connection;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on, for a server a test starts. Drawn below the kernel's
/// ephemeral range (32768 and up, where the port 0 trick finds one): every outgoing
/// connection of the tests running alongside takes its local port from that range, and one
/// did take a port found free there before the server bound it.
pub fn free_port() -> u16 {
    loop {
        let port = 20_000 + (uuid::Uuid::new_v4().as_u128() % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The `postgres` user's uid and gid, from `id`.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("running id");
        assert!(out.status.success(), "no `postgres` user to run a private Postgres as");
        String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().unwrap()
    };
    (id("-u"), id("-g"))
}

/// The directory of Postgres' server programs (`initdb`, `postgres`): the newest installed
/// under /usr/lib/postgresql, else whatever is on PATH.
fn postgres_bin(program: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path().join("bin").join(program))).collect())
        .unwrap_or_default();
    versions.retain(|p| p.exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| PathBuf::from(program))
}

fn scratch_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cutover-{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Postgres cluster of the test's own, listening on 127.0.0.1 at `port`, trusting every local
/// connection (user `postgres`).
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    server: Child,
    mounts: Vec<PathBuf>,
    owner: Option<(u32, u32)>,
}

impl PrivatePostgres {
    pub async fn start() -> PrivatePostgres {
        let dir = scratch_dir("pg");
        let owner = is_root().then(postgres_user);
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let data = dir.join("data");
        let mut initdb = Command::new(postgres_bin("initdb"));
        initdb.args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "-D"]).arg(&data);
        let out = as_owner(&mut initdb, owner).output().expect("running initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let log = std::fs::File::create(dir.join("postgres.log")).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid)).unwrap();
        }
        let mut server = Command::new(postgres_bin("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let server = as_owner(&mut server, owner).spawn().expect("starting postgres");
        let pg = PrivatePostgres { port, dir, server, mounts: Vec::new(), owner };
        let started = Instant::now();
        while sqlx::PgConnection::connect_with(&pg.options("postgres")).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the private Postgres did not answer: {}",
                std::fs::read_to_string(pg.dir.join("postgres.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pg
    }

    pub fn options(&self, database: &str) -> sqlx::postgres::PgConnectOptions {
        use sqlx::ConnectOptions;
        sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("postgres")
            .database(database)
            .disable_statement_logging()
    }

    pub async fn execute(&self, sql: &str) {
        let mut conn = sqlx::PgConnection::connect_with(&self.options("postgres")).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Mounts a tmpfs of `megabytes` and makes a tablespace `name` on it, the default for every
    /// table and index created from now on (the migrations'); answers the mount point, which
    /// `fill` fills. Needs root.
    pub async fn small_tablespace(&mut self, name: &str, megabytes: u32) -> PathBuf {
        assert!(is_root(), "a tmpfs tablespace needs root (mount); the fault tests run as root in CI");
        let mount = self.dir.join(format!("{name}-tmpfs"));
        std::fs::create_dir_all(&mount).unwrap();
        let mut options = format!("size={megabytes}m,mode=0755");
        if let Some((uid, gid)) = self.owner {
            options.push_str(&format!(",uid={uid},gid={gid}"));
        }
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &options, "tmpfs"]).arg(&mount).output().unwrap();
        assert!(out.status.success(), "mounting a tmpfs failed: {}", String::from_utf8_lossy(&out.stderr));
        self.mounts.push(mount.clone());
        let location = mount.join("tablespace");
        std::fs::create_dir(&location).unwrap();
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&location, Some(uid), Some(gid)).unwrap();
        }
        self.execute(&format!("CREATE TABLESPACE {name} LOCATION '{}'", location.display())).await;
        self.execute(&format!("ALTER SYSTEM SET default_tablespace = '{name}'")).await;
        self.execute("SELECT pg_reload_conf()").await;
        mount
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // SIGQUIT: an immediate shutdown, which takes the backends with the postmaster
        let _ = Command::new("kill").args(["-QUIT", &self.server.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.server.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
        for mount in &self.mounts {
            let _ = Command::new("umount").arg("-l").arg(mount).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_owner(command: &mut Command, owner: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    command
}

/// Fills the filesystem at `mount` to the last byte with a file of its own; answers the file,
/// whose removal frees the space.
pub fn fill(mount: &Path) -> PathBuf {
    use std::io::Write;
    let path = mount.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 1 << 20];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", mount.display()),
        }
    }
    path
}

/// RabbitMQ nodes of the test's own, clustered: each on free AMQP and distribution ports, with
/// no plugins, named `<id>n<i>@localhost`, sharing an Erlang cookie in a scratch directory.
/// The first node boots alone; the others join it as they boot (classic peer discovery).
pub struct RabbitCluster {
    dir: PathBuf,
    pub nodes: Vec<RabbitNode>,
}

pub struct RabbitNode {
    pub name: String,
    pub port: u16,
    server: Option<Child>,
    log: PathBuf,
}

const RABBITMQ_BIN: &str = "/usr/lib/rabbitmq/bin";

impl RabbitCluster {
    pub async fn start(size: usize) -> RabbitCluster {
        assert!(
            Path::new(RABBITMQ_BIN).join("rabbitmq-server").exists(),
            "RabbitMQ is not installed ({RABBITMQ_BIN}); .ci/services.sh installs it"
        );
        let dir = scratch_dir("rabbit");
        let cookie = dir.join(".erlang.cookie");
        std::fs::write(&cookie, uuid::Uuid::new_v4().simple().to_string()).unwrap();
        std::fs::set_permissions(&cookie, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.join("rabbitmq-env.conf"), "").unwrap();
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let names: Vec<String> = (1..=size).map(|i| format!("it{id}n{i}@localhost")).collect();
        let mut cluster = RabbitCluster { dir, nodes: Vec::new() };
        for (i, name) in names.iter().enumerate() {
            let port = free_port();
            let config = cluster.dir.join(format!("n{i}.conf"));
            std::fs::write(
                &config,
                format!(
                    "listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n\
                     cluster_formation.peer_discovery_backend = classic_config\n\
                     cluster_formation.classic_config.nodes.1 = {}\n",
                    names[0]
                ),
            )
            .unwrap();
            let log = cluster.dir.join(format!("n{i}.out"));
            let out = std::fs::File::create(&log).unwrap();
            let server = cluster
                .command("rabbitmq-server")
                .env("RABBITMQ_NODENAME", name)
                .env("RABBITMQ_NODE_PORT", port.to_string())
                .env("RABBITMQ_DIST_PORT", free_port().to_string())
                .env("RABBITMQ_CONFIG_FILE", &config)
                .stdin(Stdio::null())
                .stdout(Stdio::from(out.try_clone().unwrap()))
                .stderr(Stdio::from(out))
                .spawn()
                .expect("starting rabbitmq-server");
            cluster.nodes.push(RabbitNode { name: name.clone(), port, server: Some(server), log });
            // the first node boots alone, so that the others find it and join it
            if i == 0 {
                cluster.wait_booted(0).await;
            }
        }
        for i in 1..size {
            cluster.wait_booted(i).await;
        }
        let status = cluster.ctl(0, &["cluster_status", "--formatter", "json"]);
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        let running = status["running_nodes"].as_array().map_or(0, Vec::len);
        assert_eq!(running, size, "the nodes did not form one cluster: {status}");
        cluster
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(Path::new(RABBITMQ_BIN).join(program));
        command
            .env("HOME", &self.dir)
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1");
        command
    }

    async fn wait_booted(&self, node: usize) {
        let started = Instant::now();
        loop {
            let out = std::fs::read_to_string(&self.nodes[node].log).unwrap_or_default();
            if out.contains("Starting broker... completed") {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(90), "node {node} did not boot:\n{out}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `rabbitmqctl -n <node> args…`; answers its standard output, failing on a failure.
    pub fn ctl(&self, node: usize, args: &[&str]) -> String {
        let out = self.command("rabbitmqctl").arg("-n").arg(&self.nodes[node].name).args(args).output().unwrap();
        assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every node's AMQP URL, comma-separated, starting with node `first`.
    pub fn urls_from(&self, first: usize) -> String {
        let n = self.nodes.len();
        (0..n)
            .map(|i| format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.nodes[(first + i) % n].port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node that leads quorum queue `queue`, asked of node `via`.
    pub fn leader_of(&self, queue: &str, via: usize) -> usize {
        let listed = self.ctl(via, &["list_queues", "name", "leader", "--formatter", "json"]);
        let queues: serde_json::Value = serde_json::from_str(&listed).unwrap();
        let leader = queues
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == queue)
            .and_then(|q| q["leader"].as_str())
            .unwrap_or_else(|| panic!("no leader for {queue} in {listed}"))
            .to_owned();
        self.nodes.iter().position(|n| n.name == leader).unwrap_or_else(|| panic!("leader {leader} is not ours"))
    }

    /// Stops node `node` as a service manager would (SIGTERM to its start script, which stops
    /// the node), and waits for its exit. Not `rabbitmqctl stop`: that boots a VM of its own
    /// before it asks, seconds in which a test's migration may finish before the node goes.
    pub fn stop(&mut self, node: usize) {
        if let Some(mut server) = self.nodes[node].server.take() {
            let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
            let _ = server.wait();
        }
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        // SIGTERM: the start script stops its node and exits once the node is gone
        let mut running: Vec<Child> = self.nodes.iter_mut().filter_map(|n| n.server.take()).collect();
        for server in &running {
            let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
        }
        for server in &mut running {
            let _ = server.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
