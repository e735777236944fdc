//! The container-engine seam: everything the agent does to a Docker Engine, over its API
//! (bollard, unix socket or `DOCKER_HOST`). [`container_config`] — the translation of a desired
//! container into the Engine's create body — is pure and unit-tested; the rest is I/O.
//!
//! Ownership rule: every object created here carries `io.drover.cluster=<cluster id>`, and
//! every listing filters on it, so Drover never sees (and so never touches) anything else.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryHealthStatusEnum, ContainerSummaryStateEnum,
    DeviceMapping, EndpointSettings, HealthConfig, HostConfig, HostConfigLogConfig, Ipam,
    IpamConfig, Mount, MountType, NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
    PortBinding, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    EventsOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptions, ListVolumesOptions,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt};
use proto::{
    ContainerState, DesiredContainer, DesiredNetwork, DesiredVolume, EngineStatus, Health,
    LABEL_CLUSTER, LABEL_ENV, LABEL_HASH, LABEL_SERVICE, LABEL_SLOT, LABEL_STACK,
    ObservedContainer, ObservedNetwork,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("engine unreachable: {0}")]
    Unreachable(String),
    #[error("image {image} not found locally and could not be pulled: {why}")]
    ImageNotFound { image: String, why: String },
    /// A network the container joins vanished (removed while the container was being
    /// made): making the network again is the fix, not waiting.
    #[error("{0}")]
    MissingNetwork(String),
    #[error("{0}")]
    Engine(String),
}

impl From<bollard::errors::Error> for Error {
    fn from(e: bollard::errors::Error) -> Self {
        use bollard::errors::Error as B;
        match e {
            B::DockerResponseServerError {
                status_code: 404,
                message,
            } if message.starts_with("network ") && message.ends_with(" not found") => {
                Error::MissingNetwork(message)
            }
            B::DockerResponseServerError { message, .. } => Error::Engine(message),
            B::IOError { .. } | B::HyperResponseError { .. } | B::HyperLegacyError { .. } => {
                Error::Unreachable(e.to_string())
            }
            other => Error::Engine(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The networks on an engine.
#[derive(Debug, Default)]
pub struct Networks {
    /// Every name, `true` for this cluster's own.
    pub names: BTreeMap<String, bool>,
    /// This cluster's own, with subnets.
    pub owned: Vec<ObservedNetwork>,
    /// The IPv4 subnets of every network on the engine, ours or not.
    pub subnets: Vec<Ipv4Net>,
}

pub use mesh::Ipv4Net;

/// A connection to one Docker Engine, scoped to one Drover cluster.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    cluster: String,
}

impl Engine {
    /// Connects the way the docker CLI does: `DOCKER_HOST`, else the local socket; then
    /// negotiates the API version (Debian's engine speaks 1.41).
    pub async fn connect(cluster: &str) -> Result<Engine> {
        let docker =
            Docker::connect_with_defaults().map_err(|e| Error::Unreachable(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        Ok(Engine {
            docker,
            cluster: cluster.to_string(),
        })
    }

    pub async fn status(&self) -> EngineStatus {
        match self.docker.info().await {
            Ok(info) => EngineStatus {
                up: true,
                version: info.server_version,
                cpus: info.ncpu.map(|n| n as u64),
                memory: info.mem_total.map(|n| n as u64),
                os: info.os_type,
                arch: info.architecture.map(|a| image_arch(&a).to_string()),
                error: None,
            },
            Err(e) => EngineStatus {
                up: false,
                error: Some(Error::from(e).to_string()),
                ..Default::default()
            },
        }
    }

    fn owned_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_CLUSTER}={}", self.cluster)],
        )])
    }

    /// This cluster's containers on the engine.
    pub async fn containers(&self) -> Result<Vec<ObservedContainer>> {
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&self.owned_filter())
            .build();
        let list = self.docker.list_containers(Some(opts)).await?;
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            let labels = c.labels.unwrap_or_default();
            let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
            // Drover's name for a slot's container, whatever its engine name
            // (`container_name`).
            let slot: Option<u32> = label(LABEL_SLOT).parse().ok();
            let name = match (label(LABEL_STACK), label(LABEL_SERVICE), slot) {
                (stack, service, Some(slot)) if !stack.is_empty() && !service.is_empty() => {
                    proto::container_name(&stack, &service, slot)
                }
                _ => c
                    .names
                    .as_ref()
                    .and_then(|n| n.first())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
            };
            let status = c.status.unwrap_or_default();
            let state = match c.state {
                Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
                Some(ContainerSummaryStateEnum::RESTARTING) => ContainerState::Restarting,
                Some(ContainerSummaryStateEnum::PAUSED) => ContainerState::Paused,
                Some(ContainerSummaryStateEnum::EXITED) => ContainerState::Exited,
                Some(ContainerSummaryStateEnum::REMOVING) => ContainerState::Removing,
                Some(ContainerSummaryStateEnum::DEAD) => ContainerState::Dead,
                _ => ContainerState::Created,
            };
            let health = c
                .health
                .and_then(|h| h.status)
                .and_then(|s| match s {
                    ContainerSummaryHealthStatusEnum::HEALTHY => Some(Health::Healthy),
                    ContainerSummaryHealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
                    ContainerSummaryHealthStatusEnum::STARTING => Some(Health::Starting),
                    _ => None,
                })
                .or_else(|| health_from_status(&status));
            out.push(ObservedContainer {
                id: c.id.unwrap_or_default(),
                name,
                env: label(LABEL_ENV),
                stack: label(LABEL_STACK),
                service: label(LABEL_SERVICE),
                slot: label(LABEL_SLOT).parse().unwrap_or(0),
                spec_hash: label(LABEL_HASH),
                state,
                health,
                exit_code: exit_code_from_status(&status),
                image: c.image.unwrap_or_default(),
                status,
                addrs: c
                    .network_settings
                    .and_then(|n| n.networks)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(net, ep)| {
                        let ip = ep.ip_address.and_then(|ip| ip.parse().ok());
                        (net, ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED))
                    })
                    .collect(),
                network_of: c
                    .host_config
                    .and_then(|h| h.network_mode)
                    .and_then(|m| m.strip_prefix("container:").map(str::to_string)),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every network name on the engine, `true` for this cluster's own.
    pub async fn networks(&self) -> Result<BTreeMap<String, bool>> {
        Ok(self.networks_seen().await?.names)
    }

    /// Every network name on the engine, and this cluster's own with their IPv4 subnets.
    pub async fn networks_seen(&self) -> Result<Networks> {
        let list = self
            .docker
            .list_networks(None::<ListNetworksOptions>)
            .await?;
        let mut seen = Networks::default();
        for n in list {
            let owned = n
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_CLUSTER))
                .is_some_and(|c| c == &self.cluster);
            let Some(name) = n.name else { continue };
            let subnets: Vec<Ipv4Net> = n
                .ipam
                .and_then(|i| i.config)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.subnet?.parse().ok())
                .collect();
            seen.subnets.extend(subnets.iter().copied());
            if owned {
                let subnet = subnets.first().copied();
                seen.owned.push(ObservedNetwork {
                    name: name.clone(),
                    subnet,
                });
            }
            seen.names.insert(name, owned);
        }
        seen.owned.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(seen)
    }

    pub async fn volumes(&self) -> Result<BTreeSet<String>> {
        let list = self.docker.list_volumes(None::<ListVolumesOptions>).await?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    fn labels(
        &self,
        env: &str,
        stack: &str,
        extra: &BTreeMap<String, String>,
    ) -> HashMap<String, String> {
        let mut l: HashMap<String, String> = extra.clone().into_iter().collect();
        l.insert(LABEL_CLUSTER.into(), self.cluster.clone());
        l.insert(LABEL_ENV.into(), env.into());
        l.insert(LABEL_STACK.into(), stack.into());
        l
    }

    /// Creates a network; with a `subnet` (the mesh's), on that subnet and without the
    /// engine's masquerading (the mesh masquerades only what leaves the environment).
    pub async fn create_network(&self, n: &DesiredNetwork, subnet: Option<Ipv4Net>) -> Result<()> {
        let ipam = subnet.map(|s| Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(s.to_string()),
                gateway: s.hosts().next().map(|g| g.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let options = subnet.map(|_| {
            HashMap::from([(
                "com.docker.network.bridge.enable_ip_masquerade".to_string(),
                "false".to_string(),
            )])
        });
        let req = NetworkCreateRequest {
            name: n.name.clone(),
            driver: n.driver.clone(),
            internal: Some(n.internal),
            labels: Some(self.labels(&n.env, &n.stack, &n.labels)),
            ipam,
            options,
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => Ok(()),
            // Created concurrently or by an earlier, interrupted round: fine.
            Err(e) if e.to_string().contains("already exists") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        Ok(self.docker.remove_network(name).await?)
    }

    pub async fn create_volume(&self, v: &DesiredVolume) -> Result<()> {
        let req = VolumeCreateRequest {
            name: Some(v.name.clone()),
            driver: v.driver.clone(),
            labels: Some(self.labels(&v.env, &v.stack, &v.labels)),
            ..Default::default()
        };
        self.docker.create_volume(req).await?;
        Ok(())
    }

    /// Creates and starts a container, pulling its image first if the engine lacks it.
    pub async fn run(&self, c: &DesiredContainer) -> Result<String> {
        let id = self.create(c).await?;
        self.docker.start_container(&id, None).await?;
        Ok(id)
    }

    /// Creates a container (joined to all its networks) without starting it, pulling its
    /// image as its `pull_policy` says: first (`always`), when the engine lacks it
    /// (`missing`, the default), or never (`never`, and `build`: the agent builds it).
    pub async fn create(&self, c: &DesiredContainer) -> Result<String> {
        let body = container_config(c, &self.cluster)?;
        let opts = CreateContainerOptionsBuilder::default()
            .name(c.spec.container_name.as_deref().unwrap_or(&c.name))
            .build();
        let image = body.image.clone().unwrap_or_default();
        let policy = c.spec.pull_policy.unwrap_or(compose::PullPolicy::Missing);
        if policy == compose::PullPolicy::Always {
            self.pull(&image, c.registry_auth.as_ref()).await?;
        }
        let created = match self
            .docker
            .create_container(Some(opts.clone()), body.clone())
            .await
        {
            Ok(r) => r,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message,
            }) if !message.starts_with("network ") => match policy {
                compose::PullPolicy::Never | compose::PullPolicy::Build => {
                    return Err(Error::ImageNotFound {
                        image,
                        why: format!(
                            "this host does not have it and pull_policy is {}",
                            policy.as_str()
                        ),
                    });
                }
                _ => {
                    self.pull(&image, c.registry_auth.as_ref()).await?;
                    self.docker.create_container(Some(opts), body).await?
                }
            },
            Err(e) => return Err(e.into()),
        };
        // API < 1.44 takes one network at create time; join the others before start.
        for att in c.networks.iter().skip(1) {
            let req = NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(EndpointSettings {
                    aliases: Some(att.aliases.clone()),
                    ..Default::default()
                }),
            };
            self.docker.connect_network(&att.network, req).await?;
        }
        Ok(created.id)
    }

    /// Pulls `image`, logging in to its registry with `auth` when given.
    async fn pull(&self, image: &str, auth: Option<&proto::RegistryAuth>) -> Result<()> {
        let opts = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let credentials = auth.map(|a| bollard::auth::DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.server.clone()),
            ..Default::default()
        });
        let mut stream = self.docker.create_image(Some(opts), None, credentials);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                let why = Error::from(e).to_string();
                let why = match auth {
                    Some(a) => format!(
                        "{why} (pulled from {} as {}, the login `drover registry add` keeps)",
                        a.server, a.username
                    ),
                    None => why,
                };
                return Err(Error::ImageNotFound {
                    image: image.to_string(),
                    why,
                });
            }
        }
        Ok(())
    }

    pub async fn image_exists(&self, image: &str) -> Result<bool> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Builds `image` from a build context tarball (the classic builder, as engine 20.10
    /// offers it). The build output's error, if any, is the error.
    pub async fn build(
        &self,
        image: &str,
        build: &compose::Build,
        context_tar: bytes::Bytes,
    ) -> Result<()> {
        let args: HashMap<String, String> = build.args.clone().into_iter().collect();
        let mut opts = BuildImageOptionsBuilder::default()
            .t(image)
            .rm(true)
            .forcerm(true)
            .buildargs(&args);
        if let Some(d) = &build.dockerfile {
            opts = opts.dockerfile(d);
        }
        if let Some(t) = &build.target {
            opts = opts.target(t);
        }
        let mut stream = std::pin::pin!(self.docker.build_image(
            opts.build(),
            None,
            Some(bollard::body_full(context_tar)),
        ));
        while let Some(item) = stream.next().await {
            let info =
                item.map_err(|e| Error::Engine(format!("building {image}: {}", Error::from(e))))?;
            if let Some(detail) = info.error_detail {
                return Err(Error::Engine(format!(
                    "building {image}: {}",
                    detail.message.unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        Ok(self.docker.start_container(id, None).await?)
    }

    /// Stops (grace period from the container's own stop timeout) and removes.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let _ = self.docker.stop_container(id, None).await;
        self.kill_remove(id).await
    }

    /// Removes at once (SIGKILL), no grace period.
    pub async fn kill_remove(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A stream that yields once per engine event about this cluster's objects.
    pub fn events(&self) -> impl Stream<Item = Result<()>> + use<> {
        let mut filters = self.owned_filter();
        filters.insert("type".into(), vec!["container".into(), "network".into()]);
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        self.docker
            .events(Some(opts))
            .map(|r| r.map(|_| ()).map_err(Error::from))
    }

    /// Log lines of a container (stdout and stderr, with `tail` last lines, following if asked).
    pub fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> impl Stream<Item = Result<String>> + use<> {
        let tail = tail.map(|t| t.to_string()).unwrap_or_else(|| "all".into());
        let opts = LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        self.docker
            .logs(name, Some(opts))
            .map(|r| r.map(|o| o.to_string()).map_err(Error::from))
    }
}

/// What a running command writes, chunk by chunk: which stream, and the bytes.
pub type ExecOutput =
    std::pin::Pin<Box<dyn Stream<Item = Result<(proto::ExecStream, bytes::Bytes)>> + Send>>;

/// A command running in a container, attached.
pub struct Exec {
    /// The engine's id of the exec instance.
    pub id: String,
    /// Output chunks as they come: which stream, and the bytes (everything is `Stdout` with
    /// a TTY).
    pub output: ExecOutput,
    /// The command's standard input (shut down: closed), when it was asked for.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl Engine {
    /// Starts `x.cmd` in container `x.container`, attached, if the container is this
    /// cluster's: Drover runs commands only in its own containers.
    pub async fn exec(&self, x: &proto::ExecStart) -> Result<Exec> {
        use bollard::exec::{StartExecOptions, StartExecResults};
        use bollard::models::ExecConfig;
        let c = self
            .docker
            .inspect_container(&x.container, None)
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => Error::Engine(format!("no container {} on this host", x.container)),
                e => Error::from(e),
            })?;
        let ours = c
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(LABEL_CLUSTER))
            .is_some_and(|id| id == &self.cluster);
        if !ours {
            return Err(Error::Engine(format!(
                "container {} on this host is not one of this Drover cluster's",
                x.container
            )));
        }
        let config = ExecConfig {
            attach_stdin: Some(x.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(x.tty),
            env: (!x.env.is_empty()).then(|| x.env.clone()),
            cmd: Some(x.cmd.clone()),
            user: x.user.clone(),
            working_dir: x.workdir.clone(),
            // Engines from API 1.42 size the TTY before the command starts; older ones
            // ignore this and are resized just after the start below.
            console_size: match (x.tty, x.rows, x.cols) {
                (true, Some(rows), Some(cols)) => Some(vec![usize::from(rows), usize::from(cols)]),
                _ => None,
            },
            ..Default::default()
        };
        let id = self.docker.create_exec(&x.container, config).await?.id;
        let started = self
            .docker
            .start_exec(
                &id,
                Some(StartExecOptions {
                    detach: false,
                    tty: x.tty,
                    output_capacity: Some(64 * 1024),
                }),
            )
            .await?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(Error::Engine(
                "the engine did not attach to the command".into(),
            ));
        };
        let output = output.filter_map(|item| async move {
            use bollard::container::LogOutput;
            match item {
                Ok(LogOutput::StdErr { message }) => Some(Ok((proto::ExecStream::Stderr, message))),
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    Some(Ok((proto::ExecStream::Stdout, message)))
                }
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(Error::from(e))),
            }
        });
        if x.tty
            && let (Some(cols), Some(rows)) = (x.cols, x.rows)
        {
            // Best effort: a command that has already exited has no terminal to resize.
            let _ = self.resize_exec(&id, cols, rows).await;
        }
        Ok(Exec {
            id,
            output: Box::pin(output),
            input,
        })
    }

    /// Resizes the TTY of exec instance `id`.
    /// One sample of a container's resource use (`docker stats --no-stream`: the engine
    /// waits one interval to compute the CPU share).
    pub async fn stats(&self, id: &str, name: &str) -> Result<proto::ContainerStats> {
        let opts = bollard::query_parameters::StatsOptionsBuilder::default()
            .stream(false)
            .build();
        let mut s = self.docker.stats(id, Some(opts));
        match s.next().await {
            Some(Ok(r)) => Ok(container_stats(name, &r)),
            Some(Err(e)) => Err(e.into()),
            None => Err(Error::Unreachable("no stats from the engine".into())),
        }
    }

    pub async fn resize_exec(&self, id: &str, cols: u16, rows: u16) -> Result<()> {
        let opts = bollard::query_parameters::ResizeExecOptionsBuilder::default()
            .w(i32::from(cols))
            .h(i32::from(rows))
            .build();
        Ok(self.docker.resize_exec(id, opts).await?)
    }

    /// The exit code of exec instance `id`, once it stopped running.
    pub async fn exec_exit_code(&self, id: &str) -> Result<Option<i64>> {
        let i = self.docker.inspect_exec(id).await?;
        Ok(if i.running == Some(true) {
            None
        } else {
            i.exit_code
        })
    }
}

/// The architecture as images name it, from the kernel's (`x86_64` → `amd64`).
/// A stats answer as Drover keeps it: CPU as `docker stats` computes it (the container's
/// share of the host's CPU time since the previous sample, times the CPUs it may use),
/// memory without the page cache, and the network and block I/O counters.
pub fn container_stats(
    name: &str,
    r: &bollard::models::ContainerStatsResponse,
) -> proto::ContainerStats {
    let cpu = |s: &Option<bollard::models::ContainerCpuStats>| {
        let s = s.as_ref();
        (
            s.and_then(|c| c.cpu_usage.as_ref())
                .and_then(|u| u.total_usage)
                .unwrap_or(0),
            s.and_then(|c| c.system_cpu_usage).unwrap_or(0),
            s.and_then(|c| c.online_cpus).unwrap_or(0),
        )
    };
    let (total, system, cpus) = cpu(&r.cpu_stats);
    let (pre_total, pre_system, _) = cpu(&r.precpu_stats);
    let (dc, ds) = (
        total.saturating_sub(pre_total),
        system.saturating_sub(pre_system),
    );
    let cpu_percent = if ds > 0 && dc > 0 {
        dc as f64 / ds as f64 * f64::from(cpus.max(1)) * 100.0
    } else {
        0.0
    };
    let mem = r.memory_stats.as_ref();
    let cache = mem
        .and_then(|m| m.stats.as_ref())
        .and_then(|s| s.get("inactive_file").or_else(|| s.get("cache")).copied())
        .unwrap_or(0);
    let (mut net_rx, mut net_tx) = (0, 0);
    for n in r.networks.iter().flat_map(|m| m.values()) {
        net_rx += n.rx_bytes.unwrap_or(0);
        net_tx += n.tx_bytes.unwrap_or(0);
    }
    let (mut blk_read, mut blk_write) = (0, 0);
    for e in r
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .into_iter()
        .flatten()
    {
        match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => blk_read += e.value.unwrap_or(0),
            Some("write") => blk_write += e.value.unwrap_or(0),
            _ => {}
        }
    }
    proto::ContainerStats {
        name: name.to_string(),
        cpu_percent,
        mem_bytes: mem.and_then(|m| m.usage).unwrap_or(0).saturating_sub(cache),
        mem_limit: mem.and_then(|m| m.limit).unwrap_or(0),
        net_rx,
        net_tx,
        blk_read,
        blk_write,
        ..Default::default()
    }
}

pub fn image_arch(kernel: &str) -> &str {
    match kernel {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" | "armv6l" => "arm",
        "i386" | "i686" => "386",
        other => other,
    }
}

fn health_from_status(status: &str) -> Option<Health> {
    if status.contains("(healthy)") {
        Some(Health::Healthy)
    } else if status.contains("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.contains("(health: starting)") {
        Some(Health::Starting)
    } else {
        None
    }
}

/// "Exited (137) 3 seconds ago" -> 137.
fn exit_code_from_status(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split(')').next()?.parse().ok()
}

/// The Engine create body for a desired container: image, command, environment, ports,
/// mounts, first network with aliases, health check, restart policy, limits and labels.
pub fn container_config(c: &DesiredContainer, cluster: &str) -> Result<ContainerCreateBody> {
    let s = &c.spec;
    let image = s
        .image_ref(&c.stack, &c.service)
        .ok_or_else(|| Error::Engine(format!("service {} has no image", c.service)))?;
    let mut labels: HashMap<String, String> = s.labels.clone().into_iter().collect();
    labels.insert(LABEL_CLUSTER.into(), cluster.into());
    labels.insert(LABEL_ENV.into(), c.env.clone());
    labels.insert(LABEL_STACK.into(), c.stack.clone());
    labels.insert(LABEL_SERVICE.into(), c.service.clone());
    labels.insert(LABEL_SLOT.into(), c.slot.to_string());
    labels.insert(LABEL_HASH.into(), c.spec_hash.clone());
    labels.insert("com.docker.compose.project".into(), c.stack.clone());
    labels.insert("com.docker.compose.service".into(), c.service.clone());

    let env: Vec<String> = s
        .environment
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();

    let mut exposed: Vec<String> = s.expose.clone();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &s.ports {
        let key = format!("{}/{}", p.target, p.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: Some(p.published.map(|x| x.to_string()).unwrap_or_default()),
            });
    }

    let mut mounts = Vec::new();
    let mut binds = Vec::new();
    let mut tmpfs = HashMap::new();
    for m in &s.volumes {
        match m.kind {
            compose::MountKind::Volume => mounts.push(Mount {
                target: Some(m.target.clone()),
                source: m.source.as_ref().map(|src| {
                    c.volume_names
                        .get(src)
                        .cloned()
                        .unwrap_or_else(|| src.clone())
                }),
                typ: Some(MountType::VOLUME),
                read_only: Some(m.read_only),
                ..Default::default()
            }),
            // Binds as `-v` strings: the engine creates a missing host directory, as compose does.
            compose::MountKind::Bind => binds.push(format!(
                "{}:{}{}",
                m.source.as_deref().unwrap_or_default(),
                m.target,
                if m.read_only { ":ro" } else { "" }
            )),
            compose::MountKind::Tmpfs => {
                tmpfs.insert(m.target.clone(), String::new());
            }
        }
    }

    // Secrets and configs, from where the agent wrote them.
    binds.extend(c.file_binds.iter().cloned());

    let restart = match s.restart {
        compose::RestartPolicy::No => RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        },
        compose::RestartPolicy::Always => RestartPolicy {
            name: Some(RestartPolicyNameEnum::ALWAYS),
            maximum_retry_count: None,
        },
        compose::RestartPolicy::UnlessStopped => RestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        },
        compose::RestartPolicy::OnFailure { max_retries } => RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: max_retries.map(i64::from),
        },
    };

    // A sidekick sharing its primary's network joins the primary's replica on this host;
    // `none` has no network, `host` the host's. None has a network, DNS or ports of its own.
    let network_mode = match s.network_service() {
        Some(primary) => Some(format!(
            "container:{}",
            proto::container_name(&c.stack, primary, c.slot)
        )),
        None => s.network_mode.clone(),
    };
    let own_network = network_mode.is_none();
    let volumes_from: Vec<String> = s
        .volumes_from_services()
        .map(|(service, ro)| {
            let name = proto::container_name(&c.stack, service, c.slot);
            if ro { format!("{name}:ro") } else { name }
        })
        .collect();
    let networking_config = c.networks.first().map(|att| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            att.network.clone(),
            EndpointSettings {
                aliases: Some(att.aliases.clone()),
                ..Default::default()
            },
        )])),
    });

    let healthcheck = s.healthcheck.as_ref().map(|h| HealthConfig {
        test: Some(h.test.clone()),
        interval: h.interval_ns.map(|n| n as i64),
        timeout: h.timeout_ns.map(|n| n as i64),
        retries: h.retries.map(i64::from),
        start_period: h.start_period_ns.map(|n| n as i64),
        ..Default::default()
    });

    let host_config = HostConfig {
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        mounts: (!mounts.is_empty()).then_some(mounts),
        binds: (!binds.is_empty()).then_some(binds),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        restart_policy: Some(restart),
        network_mode: network_mode.or_else(|| c.networks.first().map(|a| a.network.clone())),
        volumes_from: (!volumes_from.is_empty()).then_some(volumes_from),
        memory: s.limits.memory.map(|m| m as i64),
        memory_reservation: s.reservations.memory.map(|m| m as i64),
        nano_cpus: s.limits.cpus.map(|c| (c * 1e9) as i64),
        pids_limit: s.limits.pids,
        cap_add: (!s.cap_add.is_empty()).then(|| s.cap_add.clone()),
        cap_drop: (!s.cap_drop.is_empty()).then(|| s.cap_drop.clone()),
        privileged: s.privileged.then_some(true),
        pid_mode: s.pid.clone(),
        ipc_mode: s.ipc.clone(),
        devices: (!s.devices.is_empty()).then(|| {
            s.devices
                .iter()
                .map(|d| DeviceMapping {
                    path_on_host: Some(d.host.clone()),
                    path_in_container: Some(d.container.clone()),
                    cgroup_permissions: Some(d.permissions.clone()),
                })
                .collect()
        }),
        security_opt: (!s.security_opt.is_empty()).then(|| s.security_opt.clone()),
        extra_hosts: (!s.extra_hosts.is_empty()).then(|| s.extra_hosts.clone()),
        // The mesh DNS first (it relays other names), then the service's own servers.
        dns: {
            let mut dns = c.dns.clone();
            dns.extend(s.dns.iter().cloned());
            (own_network && !dns.is_empty()).then_some(dns)
        },
        dns_search: (own_network && !s.dns_search.is_empty()).then(|| s.dns_search.clone()),
        dns_options: (own_network && !s.dns_opt.is_empty()).then(|| s.dns_opt.clone()),
        sysctls: (!s.sysctls.is_empty()).then(|| s.sysctls.clone().into_iter().collect()),
        ulimits: (!s.ulimits.is_empty()).then(|| {
            s.ulimits
                .iter()
                .map(|(name, l)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(l.soft),
                    hard: Some(l.hard),
                })
                .collect()
        }),
        init: s.init,
        shm_size: s.shm_size.map(|b| b as i64),
        readonly_rootfs: s.read_only.then_some(true),
        runtime: s.runtime.clone(),
        group_add: (!s.group_add.is_empty()).then(|| s.group_add.clone()),
        oom_score_adj: s.oom_score_adj,
        annotations: (!s.annotations.is_empty())
            .then(|| s.annotations.clone().into_iter().collect()),
        storage_opt: (!s.storage_opt.is_empty())
            .then(|| s.storage_opt.clone().into_iter().collect()),
        log_config: s.logging.as_ref().map(|l| HostConfigLogConfig {
            typ: l.driver.clone(),
            config: (!l.options.is_empty()).then(|| l.options.clone().into_iter().collect()),
        }),
        ..Default::default()
    };

    Ok(ContainerCreateBody {
        image: Some(image),
        cmd: s.command.clone(),
        entrypoint: s.entrypoint.clone(),
        env: Some(env),
        user: s.user.clone(),
        working_dir: s.working_dir.clone(),
        hostname: s.hostname.clone(),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck,
        stop_timeout: s.stop_grace_period_ns.map(|n| (n / 1_000_000_000) as i64),
        stop_signal: s.stop_signal.clone(),
        tty: s.tty.then_some(true),
        open_stdin: s.stdin_open.then_some(true),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> DesiredContainer {
        let mut spec = compose::Service {
            image: Some("drover-test/app:1".into()),
            command: Some(vec!["serve".into()]),
            restart: compose::RestartPolicy::OnFailure {
                max_retries: Some(3),
            },
            ..Default::default()
        };
        spec.environment.insert("A".into(), Some("1".into()));
        spec.environment.insert("UNSET".into(), None);
        spec.ports.push(compose::Port {
            target: 8080,
            published: Some(18080),
            host_ip: Some("127.0.0.1".into()),
            protocol: "tcp".into(),
        });
        spec.volumes.push(compose::Mount {
            kind: compose::MountKind::Volume,
            source: Some("data".into()),
            target: "/data".into(),
            read_only: false,
        });
        spec.volumes.push(compose::Mount {
            kind: compose::MountKind::Bind,
            source: Some("/srv/conf".into()),
            target: "/conf".into(),
            read_only: true,
        });
        spec.limits.memory = Some(64 << 20);
        spec.limits.cpus = Some(0.5);
        DesiredContainer {
            name: "shop-web-1".into(),
            env: "default".into(),
            stack: "shop".into(),
            service: "web".into(),
            slot: 1,
            spec_hash: "abc".into(),
            spec,
            networks: vec![
                proto::NetworkAttachment {
                    network: "shop_default".into(),
                    aliases: vec!["web".into()],
                },
                proto::NetworkAttachment {
                    network: "shop_back".into(),
                    aliases: vec!["web".into()],
                },
            ],
            volume_names: BTreeMap::from([("data".into(), "shop_data".into())]),
            dns: Vec::new(),
            replace_unhealthy: true,
            registry_auth: None,
            files: Vec::new(),
            file_binds: Vec::new(),
        }
    }

    #[test]
    fn create_body_carries_spec_and_ownership_labels() {
        let body = container_config(&desired(), "c1").expect("config");
        let labels = body.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(LABEL_CLUSTER).map(String::as_str), Some("c1"));
        assert_eq!(labels.get(LABEL_HASH).map(String::as_str), Some("abc"));
        assert_eq!(labels.get(LABEL_SLOT).map(String::as_str), Some("1"));
        assert_eq!(body.env, Some(vec!["A=1".to_string()]));
        assert_eq!(body.exposed_ports, Some(vec!["8080/tcp".to_string()]));
        let hc = body.host_config.expect("host config");
        let b = hc.port_bindings.expect("ports");
        let pb = b.get("8080/tcp").cloned().flatten().expect("binding");
        assert_eq!(pb[0].host_port.as_deref(), Some("18080"));
        assert_eq!(pb[0].host_ip.as_deref(), Some("127.0.0.1"));
        let mounts = hc.mounts.expect("mounts");
        assert_eq!(mounts[0].source.as_deref(), Some("shop_data"));
        assert_eq!(hc.binds, Some(vec!["/srv/conf:/conf:ro".to_string()]));
        assert_eq!(hc.memory, Some(64 << 20));
        assert_eq!(hc.nano_cpus, Some(500_000_000));
        let rp = hc.restart_policy.expect("restart");
        assert_eq!(rp.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(rp.maximum_retry_count, Some(3));
        // Only the first network is set at create time (API 1.41); the rest are connected.
        let eps = body
            .networking_config
            .and_then(|n| n.endpoints_config)
            .expect("eps");
        assert_eq!(eps.keys().collect::<Vec<_>>(), vec!["shop_default"]);
        assert_eq!(hc.network_mode.as_deref(), Some("shop_default"));
    }

    #[test]
    fn privileges_and_host_namespaces_reach_the_host_config() {
        let mut c = desired();
        c.spec.privileged = true;
        c.spec.pid = Some("host".into());
        c.spec.ipc = Some("shareable".into());
        c.spec.cap_add = vec!["SYS_ADMIN".into()];
        c.spec.cap_drop = vec!["ALL".into()];
        c.spec.security_opt = vec!["no-new-privileges:true".into()];
        c.spec.devices = vec![compose::Device {
            host: "/dev/null".into(),
            container: "/dev/xnull".into(),
            permissions: "r".into(),
        }];
        c.spec.ports.clear();
        c.spec.network_mode = Some(compose::NETWORK_HOST.into());
        c.networks.clear();
        c.dns = vec!["10.192.0.1".into()];
        let body = container_config(&c, "c1").expect("config");
        assert!(body.networking_config.is_none());
        let hc = body.host_config.expect("host config");
        assert_eq!(hc.privileged, Some(true));
        assert_eq!(hc.pid_mode.as_deref(), Some("host"));
        assert_eq!(hc.ipc_mode.as_deref(), Some("shareable"));
        assert_eq!(hc.cap_add, Some(vec!["SYS_ADMIN".to_string()]));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(
            hc.security_opt,
            Some(vec!["no-new-privileges:true".to_string()])
        );
        let devices = hc.devices.expect("devices");
        assert_eq!(
            (
                devices[0].path_on_host.as_deref(),
                devices[0].path_in_container.as_deref(),
                devices[0].cgroup_permissions.as_deref()
            ),
            (Some("/dev/null"), Some("/dev/xnull"), Some("r"))
        );
        // The host's network: no Drover network, and no mesh DNS.
        assert_eq!(hc.network_mode.as_deref(), Some("host"));
        assert_eq!(hc.dns, None);
        assert_eq!(hc.port_bindings, None);

        // Nothing of it when unset.
        let hc = container_config(&desired(), "c1")
            .expect("config")
            .host_config
            .expect("host config");
        assert_eq!(
            (
                hc.privileged,
                hc.pid_mode,
                hc.ipc_mode,
                hc.devices,
                hc.security_opt
            ),
            (None, None, None, None, None)
        );
    }

    #[test]
    fn status_strings_are_parsed() {
        assert_eq!(
            exit_code_from_status("Exited (137) 3 seconds ago"),
            Some(137)
        );
        assert_eq!(exit_code_from_status("Up 2 minutes"), None);
        assert_eq!(
            health_from_status("Up 2 minutes (healthy)"),
            Some(Health::Healthy)
        );
        assert_eq!(
            health_from_status("Up 1 second (health: starting)"),
            Some(Health::Starting)
        );
    }
}

#[cfg(test)]
mod stats_tests {
    #[test]
    fn stats_are_read_as_docker_stats_shows_them() {
        let r: bollard::models::ContainerStatsResponse = serde_json::from_str(
            r#"{
              "cpu_stats": {"cpu_usage": {"total_usage": 3000}, "system_cpu_usage": 20000, "online_cpus": 2},
              "precpu_stats": {"cpu_usage": {"total_usage": 1000}, "system_cpu_usage": 10000},
              "memory_stats": {"usage": 10000, "limit": 50000, "stats": {"inactive_file": 2000}},
              "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 20}, "eth1": {"rx_bytes": 1, "tx_bytes": 2}},
              "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 100},
                {"major": 8, "minor": 0, "op": "write", "value": 7},
                {"major": 8, "minor": 0, "op": "Total", "value": 107}]}
            }"#,
        )
        .expect("stats json");
        let s = super::container_stats("web-1", &r);
        assert_eq!(s.name, "web-1");
        assert!((s.cpu_percent - 40.0).abs() < 1e-9, "{}", s.cpu_percent);
        assert_eq!((s.mem_bytes, s.mem_limit), (8000, 50000));
        assert_eq!((s.net_rx, s.net_tx), (11, 22));
        assert_eq!((s.blk_read, s.blk_write), (100, 7));
        let empty = super::container_stats("x", &Default::default());
        assert_eq!(empty.cpu_percent, 0.0);
    }
}
