//! Subcommands that talk to the API: one file each.

mod catalog;
mod events;
pub mod exec;
mod files;
mod host;
mod host_ls;
mod ingress;
mod logs;
mod network;
mod ps;
mod registry;
mod service;
mod stack_config;
mod stack_deploy;
mod stack_export;
mod stack_history;
mod stack_ls;
mod stack_rm;
pub(crate) mod users;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::Failure;
use crate::client::Client;

/// Where the server is and who we are.
#[derive(Debug, Args, Clone)]
pub struct Conn {
    /// Server URL [default: from `drover up`'s config, else http://127.0.0.1:7480]. Given
    /// before the subcommand (`drover --url URL stack ls`): `auth ldap set --url` is the
    /// directory's
    #[arg(long, env = "DROVER_URL")]
    pub url: Option<String>,
    /// API token [default: from `drover up`'s config]
    #[arg(long, env = "DROVER_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to trust for an https server [default: the one `drover up`
    /// recorded in the config, else the system's roots]
    #[arg(long, env = "DROVER_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Environment to act in [default: the one `drover env use` chose, else `default`]
    #[arg(
        long = "environment",
        visible_alias = "env",
        short = 'e',
        env = "DROVER_ENV",
        global = true
    )]
    pub env: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage stacks (compose applications)
    #[command(subcommand)]
    Stack(StackCmd),
    /// List containers of all stacks
    Ps,
    /// Show logs of a container, or of every container of a stack
    Logs {
        /// Container name (e.g. shop-web-1) or stack name
        name: String,
        /// Keep streaming new output
        #[arg(short, long)]
        follow: bool,
        /// Number of lines from the end of the logs
        #[arg(long, short = 'n')]
        tail: Option<u64>,
    },
    /// Run a command in a container, on whichever host runs it; exits with the command's
    /// exit code (125: drover exec failed, 126: could not run it, 127: not found)
    Exec(exec::ExecArgs),
    /// Manage hosts
    #[command(subcommand)]
    Host(HostCmd),
    /// Manage networks: each spans every host of the environment
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Logins for private registries, used by the agents that pull from them
    #[command(subcommand)]
    Registry(RegistryCmd),
    /// TLS certificates the ingress serves, chosen by SNI
    #[command(subcommand)]
    Cert(CertCmd),
    /// The ingress: routes from `x-drover.expose`, served by hosts labelled drover.ingress=true
    #[command(subcommand)]
    Ingress(IngressCmd),
    /// Environments (tenants): list, create, remove, choose the default
    #[command(subcommand)]
    Env(EnvCmd),
    /// Secrets: values containers get as files on a tmpfs, never shown again
    #[command(subcommand)]
    Secret(FileCmd),
    /// Configs: files containers get, readable back
    #[command(subcommand)]
    Config(FileCmd),
    /// Services of stacks: list, scale
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Show the environment's recent events (`drover audit` filters the whole log)
    Events {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Sign in with a user name and password; the session is kept in the CLI config
    Login {
        /// Server URL [default: --url, else the CLI config's]
        url: Option<String>,
        #[arg(long)]
        username: Option<String>,
        /// Read the password from standard input (else a prompt in a terminal)
        #[arg(long)]
        password_stdin: bool,
    },
    /// End the session the CLI config holds
    Logout,
    /// Who the CLI acts as, and its role in each environment
    Whoami,
    /// Local users (admins)
    #[command(subcommand)]
    User(UserCmd),
    /// API keys: tokens acting with your rights (narrowed to one environment with -e/--env)
    #[command(subcommand)]
    Apikey(ApikeyCmd),
    /// Your sessions (admins: everyone's with --all)
    #[command(subcommand)]
    Session(SessionCmd),
    /// App catalogs: templates to install as stacks, and upgrade later with their answers
    #[command(subcommand)]
    Catalog(CatalogCmd),
    /// How users sign in: LDAP / Active Directory (admins)
    #[command(subcommand)]
    Auth(AuthCmd),
    /// The audit log: who did what, from where, and what was refused; newest first (admins:
    /// every environment unless -e/--env says; others: their environment)
    Audit {
        /// Only this user's actions (their API keys' too)
        #[arg(long)]
        user: Option<String>,
        /// Only actions starting with this (e.g. `stack.`, `user.login`)
        #[arg(long)]
        action: Option<String>,
        /// Only the last DURATION (e.g. 1h, 7d)
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogCmd {
    /// Add a catalog: a git repository (URL) or (admins) a directory on the server
    Add {
        name: String,
        source: String,
        #[arg(long)]
        branch: Option<String>,
    },
    /// List catalogs (the built-in `library` first) and how their last fetch went
    Ls,
    /// Fetch a catalog again (every catalog without NAME)
    Refresh { name: Option<String> },
    /// Remove a catalog (stacks installed from it keep running and stay upgradable)
    Rm { name: String },
    /// Find templates
    Search {
        text: Option<String>,
        #[arg(long)]
        category: Option<String>,
    },
    /// A template's description, versions, questions and README
    Show {
        /// CATALOG/TEMPLATE[:VERSION]
        template: String,
    },
    /// Install a template as a stack (asks, in a terminal, what it needs and was not given)
    Install {
        /// CATALOG/TEMPLATE[:VERSION]
        template: String,
        /// The stack's name [default: the template's]
        #[arg(short = 'p', long = "project-name")]
        stack: Option<String>,
        /// Answers: a JSON object or KEY=VALUE lines
        #[arg(long)]
        answers: Option<PathBuf>,
        /// An answer (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print the rendered compose file and its warnings; make nothing
        #[arg(long)]
        dry_run: bool,
        /// Return once the server accepted the stack, without waiting
        #[arg(short, long)]
        detach: bool,
        /// Seconds to wait for the stack to converge
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// LDAP / Active Directory
    #[command(subcommand)]
    Ldap(LdapCmd),
}

#[derive(Debug, Subcommand)]
pub enum LdapCmd {
    /// Sign directory users in (replaces the settings)
    Set(LdapArgs),
    /// Show the settings (never the bind password)
    Show,
    /// Look a user up as sign-in would, showing their DN and groups
    Test {
        user: String,
        /// Also sign in as them with the password read from standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Stop signing directory users in (they lose access at once)
    Rm,
}

#[derive(Debug, Args)]
pub struct LdapArgs {
    /// ldap://HOST:PORT or ldaps://HOST:PORT
    #[arg(id = "ldap_url", long = "url")]
    pub url: String,
    /// Upgrade an ldap:// connection with StartTLS
    #[arg(long)]
    pub starttls: bool,
    /// CA certificate (PEM) to trust
    #[arg(long)]
    pub ca: Option<PathBuf>,
    #[arg(long)]
    pub bind_dn: String,
    /// Read the bind password from standard input
    #[arg(long, required = true)]
    pub bind_password_stdin: bool,
    #[arg(long)]
    pub user_base: String,
    /// e.g. '(uid={username})'
    #[arg(long)]
    pub user_filter: String,
    #[arg(long, requires = "group_filter")]
    pub group_base: Option<String>,
    /// e.g. '(member={dn})'
    #[arg(long, requires = "group_base")]
    pub group_filter: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Make a local user
    Create {
        name: String,
        /// A global admin
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (else a prompt in a terminal)
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users
    Ls,
    /// Remove a user with their API keys, sessions and memberships
    Rm { name: String },
    /// Change your password, or (admins) another local user's
    Passwd {
        name: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCmd {
    /// Make an API key (printed once); -e/--env ENV narrows it to that environment
    Create {
        #[arg(long)]
        name: Option<String>,
        /// Expire after DURATION (e.g. 30d, 12h) [default: never]
        #[arg(long)]
        expires: Option<String>,
        /// A key that may only read /metrics (for Prometheus; admins)
        #[arg(long)]
        metrics: bool,
    },
    /// List your API keys (admins: everyone's with --all)
    Ls {
        #[arg(long)]
        all: bool,
    },
    /// Revoke an API key (at once)
    Rm { id: String },
}

#[derive(Debug, Subcommand)]
pub enum SessionCmd {
    /// List your sessions (admins: everyone's with --all)
    Ls {
        #[arg(long)]
        all: bool,
    },
    /// End a session
    Rm { id: String },
}

#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Give a user or `group:DN` a role in an environment (owner, member, restricted,
    /// read-only), or change it
    Add {
        env: String,
        subject: String,
        role: String,
    },
    /// List an environment's members
    Ls { env: String },
    /// Remove a member
    Rm { env: String, subject: String },
}

#[derive(Debug, Subcommand)]
pub enum HostCmd {
    /// List hosts with their state
    Ls,
    /// Show a host, with its containers, as JSON
    Inspect { host: String },
    /// Set (KEY=VALUE) or remove (KEY-) labels that placement constraints match
    Label {
        host: String,
        #[arg(required = true)]
        changes: Vec<String>,
    },
    /// Move a host's containers to other hosts and place nothing new on it
    Drain {
        host: String,
        /// Make the host schedulable again
        #[arg(long)]
        undo: bool,
    },
    /// Remove a host: its credential is revoked and its agent disconnected at once (it
    /// stops its singletons and exits); its containers are placed elsewhere
    Rm {
        host: String,
        /// Accepted for scripts written when connected hosts needed it; no effect
        #[arg(long, hide = true)]
        force: bool,
    },
    /// Registration tokens for agents
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// List the environment's networks: those made with `network create` and the stacks' own
    Ls,
    /// Make a network that stacks join with `external: true` (and `name:` if their key
    /// differs)
    Create {
        /// Letters, digits, _ . - (starting with a letter or digit), at most 64
        name: String,
    },
    /// Remove a network made with `network create` that no stack joins
    Rm { name: String },
    /// Show a network, with its subnet on each host and its containers, as JSON
    Inspect { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// List services (of one stack, or all): running and healthy replicas, image
    Ls { stack: Option<String> },
    /// Put a service back as it was in its stack's previous revision (the rest of the stack
    /// stays), and wait until it runs
    Rollback {
        #[arg(value_name = "STACK/SERVICE")]
        target: String,
        /// Return once the server accepted, without waiting
        #[arg(short, long)]
        detach: bool,
        /// Seconds to wait for the stack to converge
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Replace every container of a service, rolled like an upgrade (its update_config),
    /// and wait until the roll is done
    Restart {
        #[arg(value_name = "STACK/SERVICE")]
        target: String,
        /// Return once the server accepted, without waiting
        #[arg(short, long)]
        detach: bool,
        /// Seconds to wait for the stack to converge
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Set replica counts, STACK/SERVICE=N ..., and wait until the stacks converge
    Scale {
        #[arg(required = true, value_name = "STACK/SERVICE=N")]
        targets: Vec<String>,
        /// Return once the server accepted, without waiting
        #[arg(short, long)]
        detach: bool,
        /// Seconds to wait for the stacks to converge
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvCmd {
    /// The environments this token may act in
    Ls,
    /// Make an empty environment (admins)
    Create { name: String },
    /// Remove an environment that holds nothing any more (admins; `default` stays)
    Rm {
        name: String,
        /// First remove what it holds, saying each: its stacks (waiting for their
        /// containers), networks, secrets, configs, registry logins and hosts
        #[arg(long)]
        force: bool,
    },
    /// Members of an environment and their roles
    #[command(subcommand)]
    Member(MemberCmd),
    /// Show an environment's container policy, or (owners) replace it: what its members'
    /// and restricted users' containers may have of their hosts
    Policy {
        env: String,
        /// Privileged containers, devices, any capability, security options, the engine's
        /// socket
        #[arg(long)]
        allow_privileged: bool,
        /// network_mode/pid/ipc: host
        #[arg(long)]
        allow_host_namespaces: bool,
        /// Bind mounts under this host path (repeatable)
        #[arg(long = "allow-bind", value_name = "PATH")]
        allow_binds: Vec<String>,
        /// A capability beyond Docker's defaults (repeatable; ALL for any)
        #[arg(long = "allow-cap", value_name = "CAP")]
        allow_caps: Vec<String>,
        /// Allow nothing again (the default policy)
        #[arg(long, conflicts_with_all = ["allow_privileged", "allow_host_namespaces", "allow_binds", "allow_caps"])]
        reset: bool,
    },
    /// Act in this environment from now on, when -e does not say (kept in the CLI config)
    Use { name: String },
}

#[derive(Debug, Subcommand)]
pub enum FileCmd {
    /// Make one; its value from -f FILE, --from-env VAR, or standard input (500 KiB at most)
    Create {
        name: String,
        #[command(flatten)]
        from: FileFrom,
    },
    /// Give one a new value: every service that uses it rolls
    Update {
        name: String,
        #[command(flatten)]
        from: FileFrom,
    },
    /// List them: name, stack, version, dates, who uses each (never a secret's value)
    Ls,
    /// Remove one (refused while a service uses it)
    Rm { name: String },
    /// Print a config's value (secrets' values are never shown)
    Inspect { name: String },
}

#[derive(Debug, clap::Args)]
pub struct FileFrom {
    /// Read the value from this file
    #[arg(short = 'f', long = "file", conflicts_with = "from_env")]
    pub file: Option<PathBuf>,
    /// Read the value from this environment variable
    #[arg(long = "from-env")]
    pub from_env: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Add (or replace) the login for a registry; the password is read from standard input
    Add {
        /// HOST[:PORT] as images name it, e.g. ghcr.io or 10.0.0.5:5000
        host: String,
        #[arg(long, short = 'u')]
        username: String,
        /// Read the password from standard input (the only way: it never goes on a
        /// command line)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List the environment's registry logins (never the passwords)
    Ls,
    /// Remove a registry's login
    Rm { host: String },
}

#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// Add a certificate (PEM chain, leaf first) and its private key (PEM)
    Add {
        /// What routes name it by (`tls: NAME`)
        name: String,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// List certificates: names, domains, expiry (never the key)
    Ls,
    /// Remove a certificate
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum IngressCmd {
    /// Every route, its backends and their health
    Ls {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token and print the command that registers a host with it
    Create {
        /// Refuse the token after this long, e.g. 1h, 30m, 7d [default: never]
        #[arg(long)]
        ttl: Option<String>,
        /// How many hosts may register with it [default: any number]
        #[arg(long)]
        uses: Option<u64>,
    },
    /// List registration tokens (ids, never the secrets)
    Ls,
    /// Remove a registration token: it is refused from now on
    Rm {
        /// Token id, as `host token ls` shows it
        id: String,
    },
}

#[derive(Debug, Args, Clone)]
pub struct FileArgs {
    /// Compose file [default: compose.yaml or docker-compose.yml in the current directory]
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Stack name [default: the file's `name:`, else its directory's name]
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Variables for interpolation [default: .env beside the compose file]
    #[arg(long = "env-file")]
    pub env_files: Vec<PathBuf>,
    /// Activate a profile (repeatable)
    #[arg(long = "profile")]
    pub profiles: Vec<String>,
}

impl FileArgs {
    pub fn options(&self) -> crate::local::LoadOptions {
        crate::local::LoadOptions {
            files: self.files.clone(),
            project_name: self.project_name.clone(),
            env_files: self.env_files.clone(),
            profiles: self.profiles.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum StackCmd {
    /// Deploy (create or update) a stack from a compose file and wait until it runs
    Deploy {
        #[command(flatten)]
        file: FileArgs,
        /// Return once the server accepted the stack, without waiting
        #[arg(short, long)]
        detach: bool,
        /// Seconds to wait for the stack to converge
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// List stacks
    Ls,
    /// List the containers of a stack
    Ps { name: String },
    /// Remove a stack and its containers (named volumes are kept)
    Rm {
        name: String,
        /// Return once the server removed the stack, without waiting for its containers
        #[arg(short, long)]
        detach: bool,
        /// Seconds to wait for the containers to be gone
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Upgrade a stack installed from a catalog to a newer version (the latest by default)
    /// with its stored answers, asking only new questions; with --set on the same version,
    /// change answers
    Upgrade {
        name: String,
        #[arg(long)]
        version: Option<String>,
        /// An answer to change or give (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print the rendered compose file; change nothing
        #[arg(long)]
        dry_run: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// List a stack's revisions (each deploy, scale or rollback), newest first
    History { name: String },
    /// Deploy a kept revision again (the one before the current by default), as a new
    /// revision, and wait until it runs
    Rollback {
        name: String,
        #[arg(long)]
        revision: Option<u64>,
        /// Return once the server accepted, without waiting
        #[arg(short, long)]
        detach: bool,
        /// Seconds to wait for the stack to converge
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Write a stack back out as a compose file
    Export {
        name: String,
        /// Write to this file instead of standard output
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Validate a compose file and print it normalised, without deploying
    Config {
        #[command(flatten)]
        file: FileArgs,
        /// Output format
        #[arg(long, value_parser = ["yaml", "json"], default_value = "yaml")]
        format: String,
    },
}

pub async fn run(cmd: Command, conn: Conn) -> Result<(), Failure> {
    // `stack config` works offline.
    if let Command::Stack(StackCmd::Config { file, format }) = &cmd {
        return stack_config::run(file, format);
    }
    if let Command::Login {
        url,
        username,
        password_stdin,
    } = cmd
    {
        let cfg = crate::config::for_login(url.or(conn.url), conn.ca_cert.as_deref())?;
        let client = Client::new(&cfg, "default")?;
        return users::login(&client, &cfg, username, password_stdin).await;
    }
    let explicit_env = conn.env.clone();
    let cfg = crate::config::resolve(conn.url, conn.token, conn.ca_cert.as_deref())?;
    let env = conn
        .env
        .clone()
        .or_else(|| cfg.env.clone())
        .unwrap_or_else(|| "default".to_string());
    let client = Client::new(&cfg, &env)?;
    match cmd {
        Command::Stack(StackCmd::Deploy {
            file,
            detach,
            timeout,
        }) => stack_deploy::run(&client, &file, detach, timeout).await,
        Command::Stack(StackCmd::Ls) => stack_ls::run(&client).await,
        Command::Stack(StackCmd::Ps { name }) => ps::run(&client, Some(&name)).await,
        Command::Stack(StackCmd::Rm {
            name,
            detach,
            timeout,
        }) => stack_rm::run(&client, &name, detach, timeout).await,
        Command::Stack(StackCmd::History { name }) => stack_history::history(&client, &name).await,
        Command::Stack(StackCmd::Rollback {
            name,
            revision,
            detach,
            timeout,
        }) => stack_history::rollback(&client, &name, revision, detach, timeout).await,
        Command::Stack(StackCmd::Export { name, output }) => {
            stack_export::run(&client, &name, output.as_deref()).await
        }
        Command::Stack(StackCmd::Config { .. }) => Ok(()),
        Command::Ps => ps::run(&client, None).await,
        Command::Logs { name, follow, tail } => logs::run(&client, &name, follow, tail).await,
        Command::Exec(args) => exec::run(&client, &args).await,
        Command::Host(HostCmd::Ls) => host_ls::run(&client).await,
        Command::Host(HostCmd::Inspect { host }) => host::inspect(&client, &host).await,
        Command::Host(HostCmd::Label { host, changes }) => {
            host::label(&client, &host, &changes).await
        }
        Command::Host(HostCmd::Drain { host, undo }) => host::drain(&client, &host, !undo).await,
        Command::Host(HostCmd::Rm { host, .. }) => host::rm(&client, &host).await,
        Command::Host(HostCmd::Token(TokenCmd::Create { ttl, uses })) => {
            host::token_create(&client, &cfg.url, ttl.as_deref(), uses).await
        }
        Command::Host(HostCmd::Token(TokenCmd::Ls)) => host::token_ls(&client).await,
        Command::Host(HostCmd::Token(TokenCmd::Rm { id })) => host::token_rm(&client, &id).await,
        Command::Registry(RegistryCmd::Add { host, username, .. }) => {
            registry::add(&client, &host, &username).await
        }
        Command::Registry(RegistryCmd::Ls) => registry::ls(&client).await,
        Command::Service(ServiceCmd::Ls { stack }) => service::ls(&client, stack.as_deref()).await,
        Command::Service(ServiceCmd::Rollback {
            target,
            detach,
            timeout,
        }) => service::rollback(&client, &target, detach, timeout).await,
        Command::Service(ServiceCmd::Restart {
            target,
            detach,
            timeout,
        }) => service::restart(&client, &target, detach, timeout).await,
        Command::Service(ServiceCmd::Scale {
            targets,
            detach,
            timeout,
        }) => service::scale(&client, &targets, detach, timeout).await,
        Command::Registry(RegistryCmd::Rm { host }) => registry::rm(&client, &host).await,
        Command::Cert(CertCmd::Add { name, cert, key }) => {
            ingress::cert_add(&client, &name, &cert, &key).await
        }
        Command::Cert(CertCmd::Ls) => ingress::cert_ls(&client).await,
        Command::Cert(CertCmd::Rm { name }) => ingress::cert_rm(&client, &name).await,
        Command::Ingress(IngressCmd::Ls { json }) => ingress::ls(&client, json).await,
        Command::Env(cmd) => env_cmd(&client, cmd).await,
        Command::Secret(cmd) => file_cmd(&client, compose::FileKind::Secret, cmd).await,
        Command::Config(cmd) => file_cmd(&client, compose::FileKind::Config, cmd).await,
        Command::Network(NetworkCmd::Ls) => network::ls(&client).await,
        Command::Network(NetworkCmd::Create { name }) => network::create(&client, &name).await,
        Command::Network(NetworkCmd::Rm { name }) => network::rm(&client, &name).await,
        Command::Network(NetworkCmd::Inspect { name }) => network::inspect(&client, &name).await,
        Command::Events { limit } => events::run(&client, limit).await,
        Command::Login { .. } => Ok(()),
        Command::Logout => users::logout(&client).await,
        Command::Catalog(cmd) => catalog_cmd(&client, cmd).await,
        Command::Stack(StackCmd::Upgrade {
            name,
            version,
            set,
            dry_run,
            detach,
            timeout,
        }) => {
            let args = catalog::UpgradeArgs {
                stack: &name,
                version,
                answers: catalog::answers(None, &set)?,
                dry_run,
                detach,
                timeout,
            };
            catalog::upgrade(&client, args).await
        }
        Command::Auth(AuthCmd::Ldap(cmd)) => users::ldap(&client, cmd).await,
        Command::Whoami => users::whoami(&client).await,
        Command::User(UserCmd::Create {
            name,
            admin,
            password_stdin,
        }) => users::user_create(&client, &name, admin, password_stdin).await,
        Command::User(UserCmd::Ls) => users::user_ls(&client).await,
        Command::User(UserCmd::Rm { name }) => users::user_rm(&client, &name).await,
        Command::User(UserCmd::Passwd {
            name,
            password_stdin,
        }) => users::passwd(&client, name.as_deref(), password_stdin).await,
        Command::Apikey(ApikeyCmd::Create {
            name,
            expires,
            metrics,
        }) => {
            let env = if metrics { None } else { explicit_env };
            users::apikey_create(&client, name, env, expires.as_deref(), metrics).await
        }
        Command::Apikey(ApikeyCmd::Ls { all }) => users::tokens_ls(&client, "apikeys", all).await,
        Command::Apikey(ApikeyCmd::Rm { id }) => users::tokens_rm(&client, "apikeys", &id).await,
        Command::Session(SessionCmd::Ls { all }) => {
            users::tokens_ls(&client, "sessions", all).await
        }
        Command::Session(SessionCmd::Rm { id }) => users::tokens_rm(&client, "sessions", &id).await,
        Command::Audit {
            user,
            action,
            since,
            limit,
            json,
        } => {
            let env = match explicit_env {
                Some(e) => Some(e),
                None => {
                    let me: api_types::WhoAmI = client.get_v1("/whoami").await?;
                    (!me.admin || me.scope.is_some()).then(|| client.env.clone())
                }
            };
            let args = users::AuditArgs {
                env: env.as_deref(),
                user: user.as_deref(),
                action: action.as_deref(),
                since: since.as_deref(),
                limit,
                json,
            };
            users::audit(&client, args).await
        }
    }
}

async fn env_cmd(client: &Client, cmd: EnvCmd) -> Result<(), Failure> {
    match cmd {
        EnvCmd::Ls => {
            let list: Vec<api_types::Environment> = client.get_v1("/environments").await?;
            let rows: Vec<Vec<String>> = list.into_iter().map(|e| vec![e.name]).collect();
            table(&["ENVIRONMENT"], &rows);
            Ok(())
        }
        EnvCmd::Create { name } => {
            let req = api_types::NewEnvironment { name: name.clone() };
            let _: api_types::Environment = client.post_v1("/environments", &req).await?;
            outln!("environment {name} created");
            Ok(())
        }
        EnvCmd::Rm { name, force } => {
            if force {
                empty_env(&client.in_env(&name)).await?;
            }
            client.delete_v1(&format!("/environments/{name}")).await?;
            outln!("environment {name} removed");
            Ok(())
        }
        EnvCmd::Member(MemberCmd::Add { env, subject, role }) => {
            users::member_add(client, &env, &subject, &role).await
        }
        EnvCmd::Member(MemberCmd::Ls { env }) => users::member_ls(client, &env).await,
        EnvCmd::Policy {
            env,
            allow_privileged,
            allow_host_namespaces,
            allow_binds,
            allow_caps,
            reset,
        } => {
            let p = api_types::EnvPolicy {
                allow_privileged,
                allow_host_namespaces,
                allow_binds,
                allow_caps,
            };
            let change = reset || p != api_types::EnvPolicy::default();
            users::policy(client, &env, change.then_some(p)).await
        }
        EnvCmd::Member(MemberCmd::Rm { env, subject }) => {
            users::member_rm(client, &env, &subject).await
        }
        EnvCmd::Use { name } => {
            let list: Vec<api_types::Environment> = client.get_v1("/environments").await?;
            if !list.iter().any(|e| e.name == name) {
                return Err(Failure::failed(format!(
                    "environment '{name}' does not exist (or this token may not act in it)"
                )));
            }
            let mut cfg = crate::config::load().ok_or_else(|| {
                Failure::input(format!(
                    "no CLI config at {} to keep it in: use -e {name} or DROVER_ENV={name}",
                    crate::config::path().display()
                ))
            })?;
            cfg.env = Some(name.clone());
            let path = crate::config::save(&cfg)
                .map_err(|e| Failure::failed(format!("writing the CLI config: {e}")))?;
            outln!(
                "commands act in environment {name} (kept in {})",
                path.display()
            );
            Ok(())
        }
    }
}

/// Removes everything an environment holds, through the same routes as the commands that
/// remove each (so each is authorised and audited as they are), saying what goes.
async fn empty_env(client: &Client) -> Result<(), Failure> {
    let stacks: Vec<api_types::StackSummary> = client.get("/stacks").await?;
    for s in stacks {
        stack_rm::run(client, &s.name, false, 120).await?;
    }
    let networks: Vec<api_types::NetworkInfo> = client.get("/networks").await?;
    for n in networks.iter().filter(|n| n.kind == "external") {
        network::rm(client, &n.name).await?;
    }
    for kind in [compose::FileKind::Secret, compose::FileKind::Config] {
        let list: Vec<api_types::FileInfo> = client.get(files::path(kind)).await?;
        for f in list {
            files::rm(client, kind, &f.name).await?;
        }
    }
    let registries: Vec<api_types::RegistryInfo> = client.get("/registries").await?;
    for r in registries {
        registry::rm(client, &r.host).await?;
    }
    let certs: Vec<api_types::CertInfo> = client.get("/certs").await?;
    for c in certs {
        ingress::cert_rm(client, &c.name).await?;
    }
    let hosts: Vec<api_types::HostInfo> = client.get("/hosts").await?;
    for h in hosts {
        host::rm(client, &h.id).await?;
    }
    Ok(())
}

async fn catalog_cmd(client: &Client, cmd: CatalogCmd) -> Result<(), Failure> {
    match cmd {
        CatalogCmd::Add {
            name,
            source,
            branch,
        } => catalog::add(client, &name, &source, branch).await,
        CatalogCmd::Ls => catalog::ls(client).await,
        CatalogCmd::Refresh { name } => catalog::refresh(client, name.as_deref()).await,
        CatalogCmd::Rm { name } => catalog::rm(client, &name).await,
        CatalogCmd::Search { text, category } => {
            catalog::search(client, text.as_deref(), category.as_deref()).await
        }
        CatalogCmd::Show { template } => catalog::show(client, &template).await,
        CatalogCmd::Install {
            template,
            stack,
            answers,
            set,
            dry_run,
            detach,
            timeout,
        } => {
            let args = catalog::InstallArgs {
                reference: &template,
                stack,
                answers: catalog::answers(answers.as_deref(), &set)?,
                dry_run,
                detach,
                timeout,
            };
            catalog::install(client, args).await
        }
    }
}

async fn file_cmd(client: &Client, kind: compose::FileKind, cmd: FileCmd) -> Result<(), Failure> {
    let update = matches!(cmd, FileCmd::Update { .. });
    match cmd {
        FileCmd::Create { name, from } | FileCmd::Update { name, from } => {
            let (file, env) = (from.file.as_ref(), from.from_env.as_deref());
            files::set(client, kind, &name, file, env, update).await
        }
        FileCmd::Ls => files::ls(client, kind).await,
        FileCmd::Rm { name } => files::rm(client, kind, &name).await,
        FileCmd::Inspect { name } if kind == compose::FileKind::Config => {
            files::inspect(client, &name).await
        }
        FileCmd::Inspect { name } => Err(Failure::input(format!(
            "secret {name}: a secret's value is never shown (drover secret ls lists it)"
        ))),
    }
}

/// A path segment or query value, percent-encoded (a group's DN has '=', ',' and spaces).
pub(crate) fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A time (ms since the epoch) relative to now: `3m ago`, `in 2h`.
pub(crate) fn time(ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    relative(ms, now)
}

fn relative(ms: u64, now: u64) -> String {
    let span = |d: u64| {
        let s = d / 1000;
        match s {
            0..60 => format!("{s}s"),
            60..3600 => format!("{}m", s / 60),
            3600..86400 => format!("{}h", s / 3600),
            _ => format!("{}d", s / 86400),
        }
    };
    if ms > now {
        format!("in {}", span(ms - now))
    } else {
        format!("{} ago", span(now - ms))
    }
}

/// Prints rows as aligned columns.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        outln!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod time_tests {
    use super::relative;

    #[test]
    fn times_are_shown_relative_to_now() {
        assert_eq!(relative(1_000, 31_000), "30s ago");
        assert_eq!(relative(0, 7_200_000), "2h ago");
        assert_eq!(relative(3_600_000 + 500, 500), "in 1h");
        assert_eq!(relative(0, 3 * 86_400_000), "3d ago");
    }
}
