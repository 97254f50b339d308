//! Typed eduVPN files over the generic formats.
//!
//! - [`ServerApiConfig`]: the controller's `/etc/vpn-server-api/config.php`
//!   (2.x) or `/etc/vpn-server-api/INSTANCE/config.yaml` (1.x):
//!   `apiConsumers`, `useVpnDaemon`, `vpnProfiles`. `Format` is the PHP
//!   file; [`ServerApiConfig::emit_yaml`] / [`ServerApiConfig::parse_yaml`]
//!   the YAML one.
//! - [`NodeConfig`]: the node's `/etc/vpn-server-node/config.php` (2.x) or
//!   `/etc/vpn-server-node/INSTANCE/config.yaml` (1.x,
//!   [`NodeConfig::emit_yaml`] / [`NodeConfig::parse_yaml`]).
//! - [`NodeFirewall`]: the node's `/etc/vpn-server-node/firewall.php`
//!   (`inputRules`, `natRules`).
//!
//! Every field is optional where eduVPN has a default, so a file that omits
//! a key reads back without it. Keys these types do not model go to
//! `extra` (at the top level and per profile) and are written after the
//! modelled ones; inside firewall rules unknown keys are errors. The
//! modelled keys are written in a fixed order (the order of the fields);
//! `extra` keeps its order. Errors name the key path
//! (`vpnProfiles.node-a.range: ...`) and the line.
//!
//! Valid values (those for which `parse(emit(x)) == x`): names in
//! `vpn_profiles`, `api_consumers`, `multi_node` and `nat_rules` are unique,
//! and `extra` holds no key the type models (`to_value` skips such keys).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::php::{PhpArray, PhpFile};
use super::value::{Map, Value};
use super::yaml::YamlDoc;
use super::{CommentLine, Secret, Spans};
use crate::format::{Format, ParseError};

// ---------------------------------------------------------------------------
// Small typed values
// ---------------------------------------------------------------------------

/// A transport protocol in `vpnProtoPorts` and firewall rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Udp,
    Tcp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        })
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "udp" => Ok(Proto::Udp),
            "tcp" => Ok(Proto::Tcp),
            _ => Err(format!("`{s}` is not `udp` or `tcp`")),
        }
    }
}

/// `udp/1194`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtoPort {
    pub proto: Proto,
    pub port: u16,
}

impl fmt::Display for ProtoPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proto, self.port)
    }
}

impl FromStr for ProtoPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not like `udp/1194`");
        let (proto, port) = s.split_once('/').ok_or_else(bad)?;
        Ok(ProtoPort {
            proto: proto.parse()?,
            port: parse_port(port).ok_or_else(bad)?,
        })
    }
}

fn parse_port(s: &str) -> Option<u16> {
    if s.starts_with('+') || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// A DNS server pushed to clients: an address, or eduVPN's placeholders
/// `@GW4@` / `@GW6@` (the VPN gateway's own address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsServer {
    Addr(IpAddr),
    Gw4,
    Gw6,
}

impl fmt::Display for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsServer::Addr(a) => a.fmt(f),
            DnsServer::Gw4 => f.write_str("@GW4@"),
            DnsServer::Gw6 => f.write_str("@GW6@"),
        }
    }
}

impl FromStr for DnsServer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "@GW4@" => Ok(DnsServer::Gw4),
            "@GW6@" => Ok(DnsServer::Gw6),
            _ => s
                .parse()
                .map(DnsServer::Addr)
                .map_err(|_| format!("`{s}` is not an IP address, @GW4@ or @GW6@")),
        }
    }
}

/// A `dst_port` entry: a port (written as an int) or a range `"a:b"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpec {
    Port(u16),
    Range(u16, u16),
}

/// `IPv4` / `IPv6` in `enableNat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

impl FromStr for IpFamily {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "IPv4" => Ok(IpFamily::V4),
            "IPv6" => Ok(IpFamily::V6),
            _ => Err(format!("`{s}` is not `IPv4` or `IPv6`")),
        }
    }
}

// ---------------------------------------------------------------------------
// Reading helpers
// ---------------------------------------------------------------------------

/// An error at a key path, turned into a [`ParseError`] with the line.
struct FieldError {
    path: Vec<String>,
    message: String,
}

impl FieldError {
    fn into_parse_error(self, spans: &Spans) -> ParseError {
        let line = spans.line_of(&self.path);
        let message = if self.path.is_empty() {
            self.message
        } else {
            format!("{}: {}", self.path.join("."), self.message)
        };
        ParseError::new(line, message)
    }
}

type R<T> = Result<T, FieldError>;

fn fe(path: &[String], message: impl Into<String>) -> FieldError {
    FieldError {
        path: path.to_vec(),
        message: message.into(),
    }
}

fn child(path: &[String], key: &str) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(key.to_string());
    p
}

/// A map's entries; a list counts as a map from its indices (PHP arrays
/// with keys 0..n read as lists).
fn entries<'v>(v: &'v Value, path: &[String]) -> R<Vec<(String, &'v Value)>> {
    match v {
        Value::Map(m) => Ok(m.iter().map(|(k, v)| (k.to_string(), v)).collect()),
        Value::List(l) => Ok(l
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect()),
        v => Err(fe(path, format!("expected a map, found {}", v.kind()))),
    }
}

fn items<'v>(v: &'v Value, path: &[String]) -> R<Vec<&'v Value>> {
    match v {
        Value::List(l) => Ok(l.iter().collect()),
        Value::Map(m) if m.is_empty() => Ok(Vec::new()),
        v => Err(fe(path, format!("expected a list, found {}", v.kind()))),
    }
}

fn get_bool(v: &Value, path: &[String]) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        v => Err(fe(
            path,
            format!("expected true or false, found {}", v.kind()),
        )),
    }
}

fn get_str(v: &Value, path: &[String]) -> R<String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        v => Err(fe(path, format!("expected a string, found {}", v.kind()))),
    }
}

fn get_u32(v: &Value, path: &[String]) -> R<u32> {
    match v {
        Value::Int(i) => u32::try_from(*i).map_err(|_| fe(path, format!("{i} is out of range"))),
        v => Err(fe(path, format!("expected an integer, found {}", v.kind()))),
    }
}

fn get_parsed<T: FromStr>(v: &Value, path: &[String], what: &str) -> R<T> {
    let s = get_str(v, path)?;
    s.parse()
        .map_err(|_| fe(path, format!("`{s}` is not {what}")))
}

fn list_of<T>(v: &Value, path: &[String], f: impl Fn(&Value, &[String]) -> R<T>) -> R<Vec<T>> {
    items(v, path)?
        .into_iter()
        .enumerate()
        .map(|(i, item)| f(item, &child(path, &i.to_string())))
        .collect()
}

fn str_list(v: &Value, path: &[String]) -> R<Vec<String>> {
    list_of(v, path, get_str)
}

fn parsed_list<T: FromStr>(v: &Value, path: &[String], what: &str) -> R<Vec<T>> {
    list_of(v, path, |v, p| get_parsed(v, p, what))
}

fn strs<T: ToString>(items: &[T]) -> Value {
    Value::List(items.iter().map(|i| Value::Str(i.to_string())).collect())
}

fn put(map: &mut Map, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key, v);
    }
}

fn put_extra(map: &mut Map, extra: &Map, known: &[&str]) {
    for (k, v) in extra.iter() {
        if !known.contains(&k) {
            map.insert(k, v.clone());
        }
    }
}

/// Parses a PHP file and reads it with `read`, errors located by line.
fn read_php<T>(
    text: &str,
    read: impl FnOnce(&Value, Vec<CommentLine>) -> R<T>,
) -> Result<T, ParseError> {
    let (file, spans) = PhpFile::parse_spanned(text)?;
    read(&file.root.to_value(), file.header).map_err(|e| e.into_parse_error(&spans))
}

fn to_php(header: &[CommentLine], value: &Value) -> PhpFile {
    let root = match value {
        Value::Map(m) => PhpArray::from_map(m),
        _ => PhpArray::new(),
    };
    PhpFile {
        header: header.to_vec(),
        root,
    }
}

// ---------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------

/// One entry of `vpnProfiles` (also used for the entries of a 1.x
/// profile's `multiNode`, which override some of its fields per node).
/// `None` = key absent (eduVPN's default applies).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VpnProfile {
    pub profile_number: Option<u32>,
    pub display_name: Option<String>,
    pub ext_if: Option<String>,
    pub use_nat: Option<bool>,
    pub default_gateway: Option<bool>,
    pub host_name: Option<String>,
    pub range: Option<Ipv4Net>,
    pub range6: Option<Ipv6Net>,
    pub dns: Option<Vec<DnsServer>>,
    pub use_proxy: Option<bool>,
    pub listen: Option<IpAddr>,
    pub management_ip: Option<IpAddr>,
    pub hide_profile: Option<bool>,
    pub vpn_proto_ports: Option<Vec<ProtoPort>>,
    pub exposed_vpn_proto_ports: Option<Vec<ProtoPort>>,
    pub routes: Option<Vec<IpNet>>,
    pub reject4: Option<bool>,
    pub reject6: Option<bool>,
    pub client_to_client: Option<bool>,
    pub block_lan: Option<bool>,
    pub block_smb: Option<bool>,
    pub enable_log: Option<bool>,
    pub enable_acl: Option<bool>,
    pub acl_group_list: Option<Vec<String>>,
    pub two_factor: Option<bool>,
    pub tls_crypt: Option<bool>,
    pub enable_compression: Option<bool>,
    pub multi_node: Option<Vec<(String, VpnProfile)>>,
    pub extra: Map,
}

const PROFILE_KEYS: &[&str] = &[
    "profileNumber",
    "displayName",
    "extIf",
    "useNat",
    "defaultGateway",
    "hostName",
    "range",
    "range6",
    "dns",
    "useProxy",
    "listen",
    "managementIp",
    "hideProfile",
    "vpnProtoPorts",
    "exposedVpnProtoPorts",
    "routes",
    "reject4",
    "reject6",
    "clientToClient",
    "blockLan",
    "blockSmb",
    "enableLog",
    "enableAcl",
    "aclGroupList",
    "twoFactor",
    "tlsCrypt",
    "enableCompression",
    "multiNode",
];

impl VpnProfile {
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        let b = |x: Option<bool>| x.map(Value::Bool);
        let s = |x: &Option<String>| x.clone().map(Value::Str);
        put(
            &mut m,
            "profileNumber",
            self.profile_number.map(|n| Value::Int(n.into())),
        );
        put(&mut m, "displayName", s(&self.display_name));
        put(&mut m, "extIf", s(&self.ext_if));
        put(&mut m, "useNat", b(self.use_nat));
        put(&mut m, "defaultGateway", b(self.default_gateway));
        put(&mut m, "hostName", s(&self.host_name));
        put(
            &mut m,
            "range",
            self.range.map(|r| Value::Str(r.to_string())),
        );
        put(
            &mut m,
            "range6",
            self.range6.map(|r| Value::Str(r.to_string())),
        );
        put(&mut m, "dns", self.dns.as_deref().map(strs));
        put(&mut m, "useProxy", b(self.use_proxy));
        put(
            &mut m,
            "listen",
            self.listen.map(|a| Value::Str(a.to_string())),
        );
        put(
            &mut m,
            "managementIp",
            self.management_ip.map(|a| Value::Str(a.to_string())),
        );
        put(&mut m, "hideProfile", b(self.hide_profile));
        put(
            &mut m,
            "vpnProtoPorts",
            self.vpn_proto_ports.as_deref().map(strs),
        );
        put(
            &mut m,
            "exposedVpnProtoPorts",
            self.exposed_vpn_proto_ports.as_deref().map(strs),
        );
        put(&mut m, "routes", self.routes.as_deref().map(strs));
        put(&mut m, "reject4", b(self.reject4));
        put(&mut m, "reject6", b(self.reject6));
        put(&mut m, "clientToClient", b(self.client_to_client));
        put(&mut m, "blockLan", b(self.block_lan));
        put(&mut m, "blockSmb", b(self.block_smb));
        put(&mut m, "enableLog", b(self.enable_log));
        put(&mut m, "enableAcl", b(self.enable_acl));
        put(
            &mut m,
            "aclGroupList",
            self.acl_group_list.as_deref().map(strs),
        );
        put(&mut m, "twoFactor", b(self.two_factor));
        put(&mut m, "tlsCrypt", b(self.tls_crypt));
        put(&mut m, "enableCompression", b(self.enable_compression));
        put(
            &mut m,
            "multiNode",
            self.multi_node.as_ref().map(|nodes| {
                Value::Map(
                    nodes
                        .iter()
                        .map(|(k, p)| (k.clone(), p.to_value()))
                        .collect(),
                )
            }),
        );
        put_extra(&mut m, &self.extra, PROFILE_KEYS);
        Value::Map(m)
    }

    fn read(v: &Value, path: &[String], depth: usize) -> R<VpnProfile> {
        let mut p = VpnProfile::default();
        for (key, v) in entries(v, path)? {
            let at = child(path, &key);
            let at = &at;
            match key.as_str() {
                "profileNumber" => p.profile_number = Some(get_u32(v, at)?),
                "displayName" => p.display_name = Some(get_str(v, at)?),
                "extIf" => p.ext_if = Some(get_str(v, at)?),
                "useNat" => p.use_nat = Some(get_bool(v, at)?),
                "defaultGateway" => p.default_gateway = Some(get_bool(v, at)?),
                "hostName" => p.host_name = Some(get_str(v, at)?),
                "range" => p.range = Some(get_parsed(v, at, "an IPv4 network like 10.0.0.0/24")?),
                "range6" => p.range6 = Some(get_parsed(v, at, "an IPv6 network like fd00::/64")?),
                "dns" => p.dns = Some(parsed_list(v, at, "an IP address, @GW4@ or @GW6@")?),
                "useProxy" => p.use_proxy = Some(get_bool(v, at)?),
                "listen" => p.listen = Some(get_parsed(v, at, "an IP address")?),
                "managementIp" => p.management_ip = Some(get_parsed(v, at, "an IP address")?),
                "hideProfile" => p.hide_profile = Some(get_bool(v, at)?),
                "vpnProtoPorts" => p.vpn_proto_ports = Some(parsed_list(v, at, "like `udp/1194`")?),
                "exposedVpnProtoPorts" => {
                    p.exposed_vpn_proto_ports = Some(parsed_list(v, at, "like `udp/1194`")?)
                }
                "routes" => p.routes = Some(parsed_list(v, at, "a network like 10.0.0.0/8")?),
                "reject4" => p.reject4 = Some(get_bool(v, at)?),
                "reject6" => p.reject6 = Some(get_bool(v, at)?),
                "clientToClient" => p.client_to_client = Some(get_bool(v, at)?),
                "blockLan" => p.block_lan = Some(get_bool(v, at)?),
                "blockSmb" => p.block_smb = Some(get_bool(v, at)?),
                "enableLog" => p.enable_log = Some(get_bool(v, at)?),
                "enableAcl" => p.enable_acl = Some(get_bool(v, at)?),
                "aclGroupList" => p.acl_group_list = Some(str_list(v, at)?),
                "twoFactor" => p.two_factor = Some(get_bool(v, at)?),
                "tlsCrypt" => p.tls_crypt = Some(get_bool(v, at)?),
                "enableCompression" => p.enable_compression = Some(get_bool(v, at)?),
                "multiNode" if depth > 0 => return Err(fe(at, "multiNode inside multiNode")),
                "multiNode" => {
                    let mut nodes = Vec::new();
                    for (name, node) in entries(v, at)? {
                        nodes.push((
                            name.clone(),
                            VpnProfile::read(node, &child(at, &name), depth + 1)?,
                        ));
                    }
                    p.multi_node = Some(nodes);
                }
                _ => {
                    p.extra.insert(key, v.clone());
                }
            }
        }
        Ok(p)
    }
}

// ---------------------------------------------------------------------------
// Controller: /etc/vpn-server-api/config.php (or config.yaml)
// ---------------------------------------------------------------------------

/// The controller's vpn-server-api configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerApiConfig {
    pub header: Vec<CommentLine>,
    /// `apiConsumers`: API user name → secret.
    pub api_consumers: Option<Vec<(String, Secret)>>,
    pub use_vpn_daemon: Option<bool>,
    /// `vpnProfiles` (required): profile id → profile.
    pub vpn_profiles: Vec<(String, VpnProfile)>,
    pub extra: Map,
}

const API_KEYS: &[&str] = &["apiConsumers", "useVpnDaemon", "vpnProfiles"];

impl ServerApiConfig {
    pub fn profile(&self, id: &str) -> Option<&VpnProfile> {
        self.vpn_profiles
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, p)| p)
    }

    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        put(
            &mut m,
            "apiConsumers",
            self.api_consumers.as_ref().map(|c| {
                Value::Map(
                    c.iter()
                        .map(|(k, s)| (k.clone(), Value::Str(s.expose().to_string())))
                        .collect(),
                )
            }),
        );
        put(&mut m, "useVpnDaemon", self.use_vpn_daemon.map(Value::Bool));
        m.insert(
            "vpnProfiles",
            Value::Map(
                self.vpn_profiles
                    .iter()
                    .map(|(k, p)| (k.clone(), p.to_value()))
                    .collect(),
            ),
        );
        put_extra(&mut m, &self.extra, API_KEYS);
        Value::Map(m)
    }

    fn read(v: &Value, header: Vec<CommentLine>) -> R<Self> {
        let root: &[String] = &[];
        let mut c = ServerApiConfig {
            header,
            ..Default::default()
        };
        let mut profiles = None;
        for (key, v) in entries(v, root)? {
            let at = child(root, &key);
            match key.as_str() {
                "apiConsumers" => {
                    let mut consumers = Vec::new();
                    for (name, s) in entries(v, &at)? {
                        consumers
                            .push((name.clone(), Secret::new(get_str(s, &child(&at, &name))?)));
                    }
                    c.api_consumers = Some(consumers);
                }
                "useVpnDaemon" => c.use_vpn_daemon = Some(get_bool(v, &at)?),
                "vpnProfiles" => {
                    let mut list = Vec::new();
                    for (id, p) in entries(v, &at)? {
                        list.push((id.clone(), VpnProfile::read(p, &child(&at, &id), 0)?));
                    }
                    profiles = Some(list);
                }
                _ => {
                    c.extra.insert(key, v.clone());
                }
            }
        }
        c.vpn_profiles = profiles.ok_or_else(|| fe(root, "missing `vpnProfiles`"))?;
        Ok(c)
    }

    pub fn to_php(&self) -> PhpFile {
        to_php(&self.header, &self.to_value())
    }

    pub fn to_yaml(&self) -> YamlDoc {
        YamlDoc {
            header: self.header.clone(),
            root: self.to_value(),
        }
    }

    /// The 1.x `config.yaml` form.
    pub fn emit_yaml(&self) -> String {
        self.to_yaml().emit()
    }

    pub fn parse_yaml(text: &str) -> Result<Self, ParseError> {
        let (doc, spans) = YamlDoc::parse_spanned(text)?;
        ServerApiConfig::read(&doc.root, doc.header).map_err(|e| e.into_parse_error(&spans))
    }
}

/// The PHP file `/etc/vpn-server-api/config.php`.
impl Format for ServerApiConfig {
    fn emit(&self) -> String {
        self.to_php().emit()
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        read_php(text, ServerApiConfig::read)
    }
}

// ---------------------------------------------------------------------------
// Node: /etc/vpn-server-node/config.php
// ---------------------------------------------------------------------------

/// A node's vpn-server-node configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeConfig {
    pub header: Vec<CommentLine>,
    /// `apiUser`: the API consumer name (`vpn-server-node`).
    pub api_user: Option<String>,
    /// `apiPass`: that consumer's secret from the controller's `apiConsumers`.
    pub api_pass: Option<Secret>,
    /// `apiUri`: `https://CONTROLLER/vpn-server-api/api.php`.
    pub api_uri: Option<String>,
    pub use_vpn_daemon: Option<bool>,
    /// `profileList`: the profiles this node runs.
    pub profile_list: Option<Vec<String>>,
    /// `manageFirewall`: false keeps `apply_changes.sh` off a hand-written firewall.
    pub manage_firewall: Option<bool>,
    pub extra: Map,
}

const NODE_KEYS: &[&str] = &[
    "apiUser",
    "apiPass",
    "apiUri",
    "useVpnDaemon",
    "profileList",
    "manageFirewall",
];

impl NodeConfig {
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        put(&mut m, "apiUser", self.api_user.clone().map(Value::Str));
        put(
            &mut m,
            "apiPass",
            self.api_pass
                .as_ref()
                .map(|s| Value::Str(s.expose().to_string())),
        );
        put(&mut m, "apiUri", self.api_uri.clone().map(Value::Str));
        put(&mut m, "useVpnDaemon", self.use_vpn_daemon.map(Value::Bool));
        put(
            &mut m,
            "profileList",
            self.profile_list.as_deref().map(strs),
        );
        put(
            &mut m,
            "manageFirewall",
            self.manage_firewall.map(Value::Bool),
        );
        put_extra(&mut m, &self.extra, NODE_KEYS);
        Value::Map(m)
    }

    fn read(v: &Value, header: Vec<CommentLine>) -> R<Self> {
        let root: &[String] = &[];
        let mut c = NodeConfig {
            header,
            ..Default::default()
        };
        for (key, v) in entries(v, root)? {
            let at = &child(root, &key);
            match key.as_str() {
                "apiUser" => c.api_user = Some(get_str(v, at)?),
                "apiPass" => c.api_pass = Some(Secret::new(get_str(v, at)?)),
                "apiUri" => c.api_uri = Some(get_str(v, at)?),
                "useVpnDaemon" => c.use_vpn_daemon = Some(get_bool(v, at)?),
                "profileList" => c.profile_list = Some(str_list(v, at)?),
                "manageFirewall" => c.manage_firewall = Some(get_bool(v, at)?),
                _ => {
                    c.extra.insert(key, v.clone());
                }
            }
        }
        Ok(c)
    }

    pub fn to_php(&self) -> PhpFile {
        to_php(&self.header, &self.to_value())
    }

    pub fn to_yaml(&self) -> YamlDoc {
        YamlDoc {
            header: self.header.clone(),
            root: self.to_value(),
        }
    }

    /// The 1.x `/etc/vpn-server-node/INSTANCE/config.yaml` form.
    pub fn emit_yaml(&self) -> String {
        self.to_yaml().emit()
    }

    pub fn parse_yaml(text: &str) -> Result<Self, ParseError> {
        let (doc, spans) = YamlDoc::parse_spanned(text)?;
        NodeConfig::read(&doc.root, doc.header).map_err(|e| e.into_parse_error(&spans))
    }
}

impl Format for NodeConfig {
    fn emit(&self) -> String {
        self.to_php().emit()
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        read_php(text, NodeConfig::read)
    }
}

// ---------------------------------------------------------------------------
// Node: /etc/vpn-server-node/firewall.php
// ---------------------------------------------------------------------------

/// One `inputRules` entry: accept new connections of these protocols (from
/// these networks, to these ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRule {
    pub proto: Vec<Proto>,
    /// `src_net`; absent = from anywhere.
    pub src_net: Option<Vec<IpNet>>,
    /// `dst_port`; absent = every port.
    pub dst_port: Option<Vec<PortSpec>>,
}

/// One `natRules` entry (per profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatRule {
    pub enable_nat: Vec<IpFamily>,
}

/// The node firewall configuration vpn-server-node generates iptables from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeFirewall {
    pub header: Vec<CommentLine>,
    pub input_rules: Option<Vec<InputRule>>,
    /// profile id → NAT rule.
    pub nat_rules: Option<Vec<(String, NatRule)>>,
    pub extra: Map,
}

const FIREWALL_KEYS: &[&str] = &["inputRules", "natRules"];

impl InputRule {
    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("proto", strs(&self.proto));
        put(&mut m, "src_net", self.src_net.as_deref().map(strs));
        put(
            &mut m,
            "dst_port",
            self.dst_port.as_ref().map(|ports| {
                Value::List(
                    ports
                        .iter()
                        .map(|p| match p {
                            PortSpec::Port(p) => Value::Int((*p).into()),
                            PortSpec::Range(a, b) => Value::Str(format!("{a}:{b}")),
                        })
                        .collect(),
                )
            }),
        );
        Value::Map(m)
    }

    fn read(v: &Value, path: &[String]) -> R<InputRule> {
        let mut proto = None;
        let mut rule = InputRule {
            proto: Vec::new(),
            src_net: None,
            dst_port: None,
        };
        for (key, v) in entries(v, path)? {
            let at = &child(path, &key);
            match key.as_str() {
                "proto" => proto = Some(parsed_list(v, at, "`udp` or `tcp`")?),
                "src_net" => {
                    rule.src_net = Some(parsed_list(v, at, "a network like 192.0.2.1/32")?)
                }
                "dst_port" => rule.dst_port = Some(list_of(v, at, port_spec)?),
                _ => {
                    return Err(fe(
                        at,
                        "unknown key in an input rule (expected proto, src_net, dst_port)",
                    ));
                }
            }
        }
        rule.proto = proto.ok_or_else(|| fe(path, "missing `proto`"))?;
        Ok(rule)
    }
}

fn port_spec(v: &Value, path: &[String]) -> R<PortSpec> {
    let bad = || {
        fe(
            path,
            "expected a port (1-65535) or a range like \"1194:1201\"",
        )
    };
    match v {
        Value::Int(i) => u16::try_from(*i)
            .ok()
            .filter(|p| *p != 0)
            .map(PortSpec::Port)
            .ok_or_else(bad),
        Value::Str(s) => match s.split_once(':') {
            Some((a, b)) => match (parse_port(a), parse_port(b)) {
                (Some(a), Some(b)) if a != 0 && a <= b => Ok(PortSpec::Range(a, b)),
                _ => Err(bad()),
            },
            None => parse_port(s)
                .filter(|p| *p != 0)
                .map(PortSpec::Port)
                .ok_or_else(bad),
        },
        _ => Err(bad()),
    }
}

impl NodeFirewall {
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        put(
            &mut m,
            "inputRules",
            self.input_rules
                .as_ref()
                .map(|r| Value::List(r.iter().map(InputRule::to_value).collect())),
        );
        put(
            &mut m,
            "natRules",
            self.nat_rules.as_ref().map(|rules| {
                Value::Map(
                    rules
                        .iter()
                        .map(|(id, r)| {
                            (
                                id.clone(),
                                Value::Map(Map::from_iter([("enableNat", strs(&r.enable_nat))])),
                            )
                        })
                        .collect(),
                )
            }),
        );
        put_extra(&mut m, &self.extra, FIREWALL_KEYS);
        Value::Map(m)
    }

    fn read(v: &Value, header: Vec<CommentLine>) -> R<Self> {
        let root: &[String] = &[];
        let mut c = NodeFirewall {
            header,
            ..Default::default()
        };
        for (key, v) in entries(v, root)? {
            let at = &child(root, &key);
            match key.as_str() {
                "inputRules" => c.input_rules = Some(list_of(v, at, InputRule::read)?),
                "natRules" => {
                    let mut rules = Vec::new();
                    for (id, r) in entries(v, at)? {
                        let rp = child(at, &id);
                        let mut enable_nat = None;
                        for (k, v) in entries(r, &rp)? {
                            let kp = child(&rp, &k);
                            match k.as_str() {
                                "enableNat" => {
                                    enable_nat = Some(parsed_list(v, &kp, "`IPv4` or `IPv6`")?)
                                }
                                _ => {
                                    return Err(fe(
                                        &kp,
                                        "unknown key in a NAT rule (expected enableNat)",
                                    ));
                                }
                            }
                        }
                        let enable_nat =
                            enable_nat.ok_or_else(|| fe(&rp, "missing `enableNat`"))?;
                        rules.push((id, NatRule { enable_nat }));
                    }
                    c.nat_rules = Some(rules);
                }
                _ => {
                    c.extra.insert(key, v.clone());
                }
            }
        }
        Ok(c)
    }

    pub fn to_php(&self) -> PhpFile {
        to_php(&self.header, &self.to_value())
    }
}

impl Format for NodeFirewall {
    fn emit(&self) -> String {
        self.to_php().emit()
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        read_php(text, NodeFirewall::read)
    }
}
