//! A real OpenLDAP `slapd` on loopback for the tests: its own configuration, data and
//! certificates in a temporary directory, listening for `ldap://` (StartTLS too) and
//! `ldaps://` on free ports, killed by its PID when dropped.
//!
//! The directory: `dc=example,dc=org` with a service account `cn=drover`, users alice and
//! bob under `ou=people`, and under `ou=groups` the groupOfNames `cn=ops` (alice) and
//! `cn=devs` (alice, bob) and the posixGroup `cn=web` (memberUid bob). Users carry Active
//! Directory's `userAccountControl` (a small test schema gives slapd that attribute).

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ldap::Config;
use ldap3::{Ldap, LdapConnAsync};

pub const SUFFIX: &str = "dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PW: &str = "admin-pw";
pub const SERVICE_DN: &str = "cn=drover,dc=example,dc=org";
pub const SERVICE_PW: &str = "service-pw";
pub const ALICE: &str = "uid=alice,ou=people,dc=example,dc=org";
pub const BOB: &str = "uid=bob,ou=people,dc=example,dc=org";
pub const OPS: &str = "cn=ops,ou=groups,dc=example,dc=org";
pub const DEVS: &str = "cn=devs,ou=groups,dc=example,dc=org";
pub const WEB: &str = "cn=web,ou=groups,dc=example,dc=org";

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const SCHEMAS: &str = "/etc/ldap/schema";
const MODULES: &str = "/usr/lib/ldap";

const AD_SCHEMA: &str = "\
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.4203.666.100.1 NAME 'droverTestAccount' AUXILIARY
  MAY userAccountControl )
";

const LDIF: &str = "\
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: cn=drover,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: drover
userPassword: service-pw

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: droverTestAccount
uid: alice
cn: Alice
sn: Example
userPassword: alice-pw
userAccountControl: 512

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: droverTestAccount
uid: bob
cn: Bob
sn: Example
userPassword: bob-pw
userAccountControl: 512

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: cn=ops,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: ops
member: uid=alice,ou=people,dc=example,dc=org

dn: cn=devs,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: devs
member: uid=alice,ou=people,dc=example,dc=org
member: uid=bob,ou=people,dc=example,dc=org

dn: cn=web,ou=groups,dc=example,dc=org
objectClass: posixGroup
cn: web
gidNumber: 5000
memberUid: bob
";

/// The certificates of a test: a CA, the server's certificate from it (for 127.0.0.1 and
/// localhost), and another CA that issued nothing here.
pub struct Certs {
    pub ca_pem: String,
    pub other_ca_pem: String,
    server_pem: String,
    server_key: String,
}

fn ca() -> (rcgen::CertificateParams, rcgen::KeyPair) {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "drover ldap test CA");
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    (p, rcgen::KeyPair::generate().expect("ca key"))
}

impl Certs {
    fn new() -> Certs {
        let (params, key) = ca();
        let ca_cert = params.self_signed(&key).expect("ca cert");
        let issuer = rcgen::Issuer::new(params, key);
        let mut leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf cert");
        let (other, other_key) = ca();
        let other_ca = other.self_signed(&other_key).expect("other ca");
        Certs {
            ca_pem: ca_cert.pem(),
            other_ca_pem: other_ca.pem(),
            server_pem: leaf_cert.pem(),
            server_key: leaf_key.serialize_pem(),
        }
    }
}

pub struct Slapd {
    /// Kept for its lifetime: removed (with the data) when the server is dropped.
    dir: tempfile::TempDir,
    child: Child,
    /// `ldap://` (and StartTLS).
    pub port: u16,
    /// `ldaps://`.
    pub tls_port: u16,
    pub certs: Certs,
}

/// Two free loopback ports (held together so they differ).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("free port");
    (
        a.local_addr().expect("addr").port(),
        b.local_addr().expect("addr").port(),
    )
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

impl Slapd {
    /// Starts slapd; fails the test with instructions when it is not installed.
    pub fn start() -> Slapd {
        assert!(
            Path::new(SLAPD).exists() && Path::new(SLAPADD).exists(),
            "{SLAPD} is not installed: these tests need a real OpenLDAP server. Install it with \
             `echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections && \
             DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils` (as .ci/run does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let certs = Certs::new();
        write(&d.join("ca.pem"), &certs.ca_pem);
        write(&d.join("server.pem"), &certs.server_pem);
        write(&d.join("server.key"), &certs.server_key);
        write(&d.join("ad.schema"), AD_SCHEMA);
        write(&d.join("data.ldif"), LDIF);
        fs::create_dir(d.join("data")).expect("data dir");
        let conf = d.join("slapd.conf");
        write(&conf, &slapd_conf(d));
        run(Command::new(SLAPADD)
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(d.join("data.ldif")));
        // A port may be taken between choosing and binding it: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            let (port, tls_port) = free_ports();
            let log_path = d.join(format!("slapd-{port}.log"));
            let log = fs::File::create(&log_path).expect("log file");
            let err = log.try_clone().expect("log file");
            let mut child = Command::new(SLAPD)
                .arg("-f")
                .arg(&conf)
                .arg("-h")
                .arg(format!(
                    "ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"
                ))
                // Any debug level keeps slapd in the foreground, so its PID is ours to kill.
                .args(["-d", "0"])
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("{SLAPD}: {e}"));
            if wait_ready(&mut child, port, tls_port) {
                return Slapd {
                    dir,
                    child,
                    port,
                    tls_port,
                    certs,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = read_log(&log_path);
        }
        panic!("slapd did not start: {last_log}");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Plain `ldap://`, bound as the service account, groupOfNames groups.
    pub fn config(&self) -> Config {
        Config {
            url: format!("ldap://127.0.0.1:{}", self.port),
            starttls: false,
            ca_pem: None,
            bind_dn: SERVICE_DN.into(),
            bind_password: SERVICE_PW.into(),
            user_base: format!("ou=people,{SUFFIX}"),
            user_filter: "(&(objectClass=inetOrgPerson)(uid={username}))".into(),
            group_base: Some(format!("ou=groups,{SUFFIX}")),
            group_filter: Some("(member={dn})".into()),
        }
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    /// A connection bound as the directory's root, to change it under the code's feet.
    pub async fn admin(&self) -> Ldap {
        let (conn, mut ldap) = LdapConnAsync::new(&format!("ldap://127.0.0.1:{}", self.port))
            .await
            .expect("admin connection");
        tokio::spawn(async move {
            let _ = conn.drive().await;
        });
        ldap.simple_bind(ADMIN_DN, ADMIN_PW)
            .await
            .and_then(|r| r.success())
            .expect("admin bind");
        ldap
    }

    pub fn log(&self) -> String {
        read_log(&self.dir.path().join(format!("slapd-{}.log", self.port)))
    }
}

/// Whether slapd listens on both ports within 10 s (false as soon as it exits).
fn wait_ready(child: &mut Child, port: u16, tls_port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_log(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn slapd_conf(d: &Path) -> String {
    let d = d.display();
    format!(
        "\
include {SCHEMAS}/core.schema
include {SCHEMAS}/cosine.schema
include {SCHEMAS}/inetorgperson.schema
include {SCHEMAS}/nis.schema
include {d}/ad.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath {MODULES}
moduleload back_mdb
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key

database mdb
maxsize 16777216
suffix \"{SUFFIX}\"
rootdn \"{ADMIN_DN}\"
rootpw {ADMIN_PW}
directory {d}/data
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
"
    )
}
