//! Cloud route-table entries: "traffic for this remote CIDR leaves the VPC
//! through that VPN instance" (reference 003's main route tables), in two
//! forms:
//! - [`RouteTables`]: JSON for people and tools (`serde_json`, fields in a
//!   fixed order, routes in the order given; the generator sorts them);
//! - [`TerraformFile`]: Terraform `aws_route` resources, with one `aws`
//!   provider alias per region, and `variable` blocks for the IDs that only
//!   exist in the cloud (route table IDs, the VPN instances' network
//!   interface IDs): the file refers to them as `var.<name>` and the operator
//!   supplies them (`terraform.tfvars`, `-var`).
//!
//! The Terraform side is a small HCL subset, written the way `terraform
//! fmt` lays it out (2-space indent, `=` aligned within a block, a blank
//! line between blocks) and read back by [`TerraformFile::parse`]: comment
//! lines (`#`, `//`) before the first block form the header; blocks are
//! `provider "aws"`, `variable "NAME"` and `resource "aws_route" "NAME"`,
//! one attribute per line, values a `"string"` (no escapes, no `${`/`%{`
//! templates) or a reference (`var.x`, `aws.alias`, `string`). Nested
//! blocks, unknown blocks or attributes, an attribute given twice and a
//! resource without its required attributes are refused, with the line.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::format::{Format, ParseError};
use crate::wgquick::{Comment, InvalidValue};

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// A name from the scenario (VPC, region, route table, instance): 1 to 64
/// ASCII letters, digits, `_`, `-` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn new(name: impl Into<String>) -> Result<Name, InvalidValue> {
        InvalidValue::check_chars(
            "name",
            name.into(),
            (64, "must be 1 to 64 characters"),
            (
                |c| c.is_ascii_alphanumeric() || "_-.".contains(c),
                "only ASCII letters, digits, '_', '-' and '.'",
            ),
        )
        .map(Name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Name, InvalidValue> {
        Name::new(s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A destination: an IP prefix without host bits (AWS refuses others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn new(net: IpNet) -> Result<Cidr, InvalidValue> {
        if net.trunc() != net {
            return Err(InvalidValue::new(
                "CIDR",
                &net.to_string(),
                "has host bits set",
            ));
        }
        Ok(Cidr(net))
    }

    pub fn net(self) -> IpNet {
        self.0
    }
}

impl TryFrom<String> for Cidr {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Cidr, InvalidValue> {
        let net: IpNet = s
            .parse()
            .map_err(|_| InvalidValue::new("CIDR", &s, "is not an IP prefix"))?;
        Cidr::new(net)
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.0.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

/// One route-table entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudRoute {
    /// The VPC (scenario site) whose route table holds the entry.
    pub vpc: Name,
    /// The cloud region of the VPC, when the scenario names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Name>,
    /// Which route table of the VPC (`main` for the VPC's main table).
    pub route_table: Name,
    /// The remote CIDR.
    pub destination: Cidr,
    /// The VPN instance (scenario host) the traffic goes to.
    pub target_instance: Name,
    /// That instance's private address in the VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_address: Option<IpAddr>,
}

/// The route-table entries of a scenario (`routes.json`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTables {
    pub routes: Vec<CloudRoute>,
}

impl RouteTables {
    /// One entry per (VPC, route table, destination).
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for r in &self.routes {
            if !seen.insert((&r.vpc, &r.route_table, r.destination)) {
                return Err(format!(
                    "{} {}: {} routed twice",
                    r.vpc, r.route_table, r.destination
                ));
            }
        }
        Ok(())
    }
}

impl Format for RouteTables {
    fn emit(&self) -> String {
        // Serialising plain strings, addresses and vectors cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let tables: RouteTables =
            serde_json::from_str(text).map_err(|e| ParseError::new(e.line(), e.to_string()))?;
        tables.validate().map_err(|e| ParseError::new(0, e))?;
        Ok(tables)
    }
}

// ---------------------------------------------------------------------------
// Terraform
// ---------------------------------------------------------------------------

/// An HCL identifier: a letter or `_`, then letters, digits, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ident(String);

impl Ident {
    pub fn new(name: impl Into<String>) -> Result<Ident, InvalidValue> {
        let name = name.into();
        let ok = name.len() <= 128
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(InvalidValue::new(
                "identifier",
                &name,
                "a letter or '_', then letters, digits, '_' or '-'",
            ));
        }
        Ok(Ident(name))
    }

    /// An identifier made from any name: characters other than letters,
    /// digits and `_` become `_`, and a leading digit gets a `_` before it.
    pub fn sanitized(name: &str) -> Ident {
        let mut s: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            s.insert(0, '_');
        }
        s.truncate(128);
        Ident(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An HCL string literal's content: no `"`, `\`, control characters or
/// template sequences (`${`, `%{`), so it needs no escaping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HclString(String);

impl HclString {
    pub fn new(text: impl Into<String>) -> Result<HclString, InvalidValue> {
        let text = text.into();
        if text
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
            || text.contains("${")
            || text.contains("%{")
        {
            return Err(InvalidValue::new(
                "HCL string",
                &text,
                "must not contain '\"', '\\', control characters, '${' or '%{'",
            ));
        }
        Ok(HclString(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The value of an ID attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdRef {
    /// `var.NAME`: supplied by the operator.
    Var(Ident),
    /// A literal ID such as `"rtb-0123"`.
    Literal(HclString),
}

impl IdRef {
    fn emitted(&self) -> String {
        match self {
            IdRef::Var(v) => format!("var.{v}"),
            IdRef::Literal(s) => format!("\"{}\"", s.0),
        }
    }
}

/// `provider "aws" { alias = "...", region = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub alias: Ident,
    pub region: HclString,
}

/// `variable "NAME" { type = string, description = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: Ident,
    pub description: Option<HclString>,
}

/// `resource "aws_route" "NAME" { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsRoute {
    pub name: Ident,
    /// `provider = aws.ALIAS`.
    pub provider: Option<Ident>,
    pub route_table_id: IdRef,
    pub destination_cidr_block: Cidr,
    pub network_interface_id: IdRef,
}

/// One top-level block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Provider(Provider),
    Variable(Variable),
    Route(AwsRoute),
}

/// A Terraform file (`routes.tf`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TerraformFile {
    /// Comment lines at the top (`#`).
    pub header: Vec<Comment>,
    pub blocks: Vec<Block>,
}

impl TerraformFile {
    pub fn routes(&self) -> impl Iterator<Item = &AwsRoute> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Route(r) => Some(r),
            _ => None,
        })
    }

    /// What Terraform itself would refuse: two blocks of one kind and name,
    /// a reference to an undeclared variable or provider alias.
    pub fn validate(&self) -> Result<(), String> {
        let mut aliases = BTreeSet::new();
        let mut vars = BTreeSet::new();
        let mut routes = BTreeSet::new();
        for b in &self.blocks {
            let fresh = match b {
                Block::Provider(p) => aliases.insert(&p.alias),
                Block::Variable(v) => vars.insert(&v.name),
                Block::Route(r) => routes.insert(&r.name),
            };
            if !fresh {
                return Err(format!("{b:?} declared twice"));
            }
        }
        for r in self.routes() {
            if let Some(p) = &r.provider
                && !aliases.contains(p)
            {
                return Err(format!(
                    "aws_route.{}: provider aws.{p} is not declared",
                    r.name
                ));
            }
            for id in [&r.route_table_id, &r.network_interface_id] {
                if let IdRef::Var(v) = id
                    && !vars.contains(v)
                {
                    return Err(format!("aws_route.{}: var.{v} is not declared", r.name));
                }
            }
        }
        Ok(())
    }
}

/// Attributes aligned on `=` as `terraform fmt` does.
fn emit_block(out: &mut String, head: &str, attrs: &[(&str, String)]) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(head);
    out.push_str(" {\n");
    let width = attrs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in attrs {
        out.push_str(&format!("  {k:<width$} = {v}\n"));
    }
    out.push_str("}\n");
}

impl Format for TerraformFile {
    fn emit(&self) -> String {
        let mut out = String::new();
        for c in &self.header {
            out.push_str(&c.to_line('#'));
            out.push('\n');
        }
        for b in &self.blocks {
            match b {
                Block::Provider(p) => emit_block(
                    &mut out,
                    "provider \"aws\"",
                    &[
                        ("alias", format!("\"{}\"", p.alias)),
                        ("region", format!("\"{}\"", p.region.0)),
                    ],
                ),
                Block::Variable(v) => {
                    let mut attrs = vec![("type", "string".to_owned())];
                    if let Some(d) = &v.description {
                        attrs.push(("description", format!("\"{}\"", d.0)));
                    }
                    emit_block(&mut out, &format!("variable \"{}\"", v.name), &attrs);
                }
                Block::Route(r) => {
                    let mut attrs = Vec::new();
                    if let Some(p) = &r.provider {
                        attrs.push(("provider", format!("aws.{p}")));
                    }
                    attrs.push(("route_table_id", r.route_table_id.emitted()));
                    attrs.push((
                        "destination_cidr_block",
                        format!("\"{}\"", r.destination_cidr_block),
                    ));
                    attrs.push(("network_interface_id", r.network_interface_id.emitted()));
                    emit_block(
                        &mut out,
                        &format!("resource \"aws_route\" \"{}\"", r.name),
                        &attrs,
                    );
                }
            }
        }
        out
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let mut file = TerraformFile::default();
        let mut in_header = true;
        // The open block: its line, its labels, its attributes so far.
        let mut open: Option<(usize, Vec<String>, Vec<Attr>)> = None;
        let mut last = 0;
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            last = n;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.chars().any(|c| c.is_control() && c != '\t') {
                return Err(ParseError::new(n, "control character in line"));
            }
            let line = raw.trim_matches([' ', '\t']);
            if line.is_empty() {
                continue;
            }
            if let Some(c) = line.strip_prefix('#').or_else(|| line.strip_prefix("//")) {
                if in_header {
                    file.header.push(Comment::from_line_lossy(c));
                }
                continue;
            }
            in_header = false;
            if line == "}" {
                let Some((start, labels, attrs)) = open.take() else {
                    return Err(ParseError::new(n, "'}' without an open block"));
                };
                file.blocks.push(typed_block(start, &labels, attrs)?);
                continue;
            }
            if let Some(head) = line.strip_suffix('{') {
                if let Some((start, _, _)) = &open {
                    return Err(ParseError::new(
                        n,
                        format!("nested block (the block of line {start} is still open)"),
                    ));
                }
                open = Some((n, block_labels(head, n)?, Vec::new()));
                continue;
            }
            let Some((_, _, attrs)) = &mut open else {
                return Err(ParseError::new(
                    n,
                    format!(
                        "expected a block (`resource \"aws_route\" \"NAME\" {{`), got '{line}'"
                    ),
                ));
            };
            let Some((key, value)) = line.split_once('=') else {
                return Err(ParseError::new(
                    n,
                    format!("expected `name = value`, got '{line}'"),
                ));
            };
            let key = key.trim_matches([' ', '\t']);
            if Ident::new(key).is_err() {
                return Err(ParseError::new(
                    n,
                    format!("invalid attribute name '{key}'"),
                ));
            }
            if attrs.iter().any(|(_, k, _)| k == key) {
                return Err(ParseError::new(n, format!("attribute '{key}' given twice")));
            }
            attrs.push((n, key.to_owned(), parse_expr(value, n)?));
        }
        if let Some((start, _, _)) = open {
            return Err(ParseError::new(
                start,
                format!("block not closed: end of file (line {last}) inside it"),
            ));
        }
        file.validate().map_err(|e| ParseError::new(0, e))?;
        Ok(file)
    }
}

/// An attribute as read: its line, name and value.
type Attr = (usize, String, Expr);

/// An attribute value as read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Str(String),
    /// `a.b.c`.
    Ref(Vec<String>),
}

fn parse_expr(value: &str, n: usize) -> Result<Expr, ParseError> {
    let value = value.trim_matches([' ', '\t']);
    if let Some(q) = value.strip_prefix('"') {
        let Some(inner) = q.strip_suffix('"') else {
            return Err(ParseError::new(n, "unterminated string"));
        };
        if inner.contains('"') || inner.contains('\\') {
            return Err(ParseError::new(
                n,
                "quotes and escapes inside strings are not supported",
            ));
        }
        if inner.contains("${") || inner.contains("%{") {
            return Err(ParseError::new(n, "template sequences are not supported"));
        }
        return Ok(Expr::Str(inner.to_owned()));
    }
    let parts: Vec<String> = value.split('.').map(str::to_owned).collect();
    if parts.iter().any(|p| Ident::new(p.as_str()).is_err()) {
        return Err(ParseError::new(
            n,
            format!("expected a \"string\" or a reference like var.name, got '{value}'"),
        ));
    }
    Ok(Expr::Ref(parts))
}

fn block_labels(head: &str, n: usize) -> Result<Vec<String>, ParseError> {
    let mut labels = Vec::new();
    let mut rest = head.trim_matches([' ', '\t']);
    let (kind, r) = rest
        .split_once([' ', '\t'])
        .map_or((rest, ""), |(k, r)| (k, r));
    labels.push(kind.to_owned());
    rest = r.trim_start_matches([' ', '\t']);
    while let Some(q) = rest.strip_prefix('"') {
        let end = q
            .find('"')
            .ok_or_else(|| ParseError::new(n, "unterminated block label"))?;
        labels.push(q[..end].to_owned());
        rest = q[end + 1..].trim_start_matches([' ', '\t']);
    }
    if !rest.is_empty() {
        return Err(ParseError::new(
            n,
            format!("unexpected '{rest}' in a block header"),
        ));
    }
    Ok(labels)
}

struct Attrs {
    start: usize,
    what: String,
    attrs: Vec<Attr>,
}

impl Attrs {
    fn take(&mut self, key: &str) -> Option<(usize, Expr)> {
        let i = self.attrs.iter().position(|(_, k, _)| k == key)?;
        let (n, _, e) = self.attrs.remove(i);
        Some((n, e))
    }

    fn required(&mut self, key: &str) -> Result<(usize, Expr), ParseError> {
        self.take(key).ok_or_else(|| {
            ParseError::new(
                self.start,
                format!("{}: missing attribute '{key}'", self.what),
            )
        })
    }

    fn finish(self) -> Result<(), ParseError> {
        match self.attrs.first() {
            Some((n, k, _)) => Err(ParseError::new(
                *n,
                format!("{}: unsupported attribute '{k}'", self.what),
            )),
            None => Ok(()),
        }
    }
}

fn string(key: &str, (n, e): (usize, Expr)) -> Result<HclString, ParseError> {
    match e {
        Expr::Str(s) => HclString::new(s).map_err(|e| ParseError::new(n, e.to_string())),
        Expr::Ref(_) => Err(ParseError::new(n, format!("{key}: expected a \"string\""))),
    }
}

fn id_ref(key: &str, (n, e): (usize, Expr)) -> Result<IdRef, ParseError> {
    match e {
        Expr::Str(s) => HclString::new(s)
            .map(IdRef::Literal)
            .map_err(|e| ParseError::new(n, e.to_string())),
        Expr::Ref(parts) => match parts.as_slice() {
            [var, name] if var == "var" => Ident::new(name.as_str())
                .map(IdRef::Var)
                .map_err(|e| ParseError::new(n, e.to_string())),
            _ => Err(ParseError::new(
                n,
                format!("{key}: expected a \"literal\" or var.NAME"),
            )),
        },
    }
}

fn ident(what: &str, text: &str, n: usize) -> Result<Ident, ParseError> {
    Ident::new(text).map_err(|e| ParseError::new(n, format!("{what}: {e}")))
}

fn typed_block(start: usize, labels: &[String], attrs: Vec<Attr>) -> Result<Block, ParseError> {
    let mut a = Attrs {
        start,
        what: labels.join(" "),
        attrs,
    };
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let block = match labels.as_slice() {
        ["provider", "aws"] => {
            let alias = string("alias", a.required("alias")?)?;
            let region = string("region", a.required("region")?)?;
            Block::Provider(Provider {
                alias: ident("alias", alias.as_str(), start)?,
                region,
            })
        }
        ["variable", name] => {
            match a.required("type")? {
                (_, Expr::Ref(t)) if t == ["string"] => {}
                (n, _) => return Err(ParseError::new(n, "variable type: expected `string`")),
            }
            let description = a
                .take("description")
                .map(|d| string("description", d))
                .transpose()?;
            Block::Variable(Variable {
                name: ident("variable", name, start)?,
                description,
            })
        }
        ["resource", "aws_route", name] => {
            let provider = match a.take("provider") {
                None => None,
                Some((n, Expr::Ref(parts))) => match parts.as_slice() {
                    [aws, alias] if aws == "aws" => Some(ident("provider", alias, n)?),
                    _ => return Err(ParseError::new(n, "provider: expected aws.ALIAS")),
                },
                Some((n, Expr::Str(_))) => {
                    return Err(ParseError::new(n, "provider: expected aws.ALIAS"));
                }
            };
            let route_table_id = id_ref("route_table_id", a.required("route_table_id")?)?;
            let (n, dest) = a.required("destination_cidr_block")?;
            let dest = string("destination_cidr_block", (n, dest))?;
            let destination_cidr_block = Cidr::try_from(dest.0)
                .map_err(|e| ParseError::new(n, format!("destination_cidr_block: {e}")))?;
            let network_interface_id =
                id_ref("network_interface_id", a.required("network_interface_id")?)?;
            Block::Route(AwsRoute {
                name: ident("resource name", name, start)?,
                provider,
                route_table_id,
                destination_cidr_block,
                network_interface_id,
            })
        }
        _ => {
            return Err(ParseError::new(
                start,
                format!(
                    "unsupported block '{}' (provider \"aws\", variable, resource \"aws_route\")",
                    a.what
                ),
            ));
        }
    };
    a.finish()?;
    Ok(block)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::libreswan::strategies::{arb_ip, arb_net};
    use crate::wgquick::comments;
    use crate::wgquick::strategies::{arb_comment, mutate};
    use proptest::collection::vec;
    use proptest::option::of;
    use proptest::prelude::*;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        Cidr::new(s.parse().unwrap()).unwrap()
    }

    /// Reference 003's main route tables.
    fn reference_tables() -> RouteTables {
        let route = |vpc: &str, region: &str, dest: &str, host: &str, ip: &str| CloudRoute {
            vpc: name(vpc),
            region: Some(name(region)),
            route_table: name("main"),
            destination: cidr(dest),
            target_instance: name(host),
            target_address: Some(ip.parse().unwrap()),
        };
        RouteTables {
            routes: vec![
                route(
                    "vpc1",
                    "us-east-1",
                    "12.11.0.0/16",
                    "vpn-virginia",
                    "10.11.4.5",
                ),
                route(
                    "vpc1",
                    "us-east-1",
                    "13.11.0.0/16",
                    "vpn-virginia",
                    "10.11.4.5",
                ),
                route(
                    "vpc2",
                    "ap-southeast-2",
                    "10.11.0.0/16",
                    "vpn-sydney",
                    "12.11.4.5",
                ),
            ],
        }
    }

    fn reference_tf() -> TerraformFile {
        let id = |s: &str| Ident::new(s).unwrap();
        let hs = |s: &str| HclString::new(s).unwrap();
        TerraformFile {
            header: comments("Generated by vpnsim\nIDs come from variables").unwrap(),
            blocks: vec![
                Block::Provider(Provider {
                    alias: id("us_east_1"),
                    region: hs("us-east-1"),
                }),
                Block::Variable(Variable {
                    name: id("vpc1_route_table_id"),
                    description: Some(hs("ID of the main route table of vpc1")),
                }),
                Block::Variable(Variable {
                    name: id("vpn_virginia_network_interface_id"),
                    description: None,
                }),
                Block::Route(AwsRoute {
                    name: id("vpc1_12_11_0_0_16"),
                    provider: Some(id("us_east_1")),
                    route_table_id: IdRef::Var(id("vpc1_route_table_id")),
                    destination_cidr_block: cidr("12.11.0.0/16"),
                    network_interface_id: IdRef::Var(id("vpn_virginia_network_interface_id")),
                }),
            ],
        }
    }

    #[test]
    fn snapshot_json() {
        let text = reference_tables().emit();
        insta::assert_snapshot!("reference_003_routes_json", text);
        assert_eq!(RouteTables::parse(&text).unwrap(), reference_tables());
    }

    #[test]
    fn snapshot_terraform() {
        let tf = reference_tf();
        assert!(tf.validate().is_ok());
        let text = tf.emit();
        insta::assert_snapshot!("reference_003_routes_tf", text);
        assert_eq!(TerraformFile::parse(&text).unwrap(), tf);
    }

    #[test]
    fn json_rejections() {
        for (text, what) in [
            ("{\"routes\": [], \"x\": 1}", "unknown field"),
            ("{\"routes\": [{\"vpc\": \"a b\"}]}", "name"),
            (
                "{\"routes\": [{\"vpc\": \"a\", \"route_table\": \"main\", \"destination\": \"10.0.0.1/8\", \"target_instance\": \"h\"}]}",
                "host bits",
            ),
            (
                "{\"routes\": [{\"vpc\": \"a\", \"route_table\": \"main\", \"destination\": \"10.0.0.0/8\", \"target_instance\": \"h\"}, {\"vpc\": \"a\", \"route_table\": \"main\", \"destination\": \"10.0.0.0/8\", \"target_instance\": \"g\"}]}",
                "twice",
            ),
            ("[", "EOF"),
        ] {
            let e = RouteTables::parse(text).unwrap_err();
            assert!(e.message.contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn terraform_rejections() {
        let ok = reference_tf().emit();
        for (text, line, what) in [
            (
                "resource \"aws_route\" \"a\" {\n".to_owned(),
                1,
                "not closed",
            ),
            ("}\n".to_owned(), 1, "without an open block"),
            ("x = 1\n".to_owned(), 1, "expected a block"),
            (
                "resource \"aws_instance\" \"a\" {\n}\n".to_owned(),
                1,
                "unsupported block",
            ),
            (
                "variable \"a\" {\n  type = number\n}\n".to_owned(),
                2,
                "string",
            ),
            (
                "variable \"a\" {\n  type = string\n  type = string\n}\n".to_owned(),
                3,
                "twice",
            ),
            (
                "variable \"a\" {\n  type = string\n  default = \"x\"\n}\n".to_owned(),
                3,
                "unsupported attribute",
            ),
            (
                "variable \"a\" {\n  type = string\n  description = \"${x}\"\n}\n".to_owned(),
                3,
                "template",
            ),
            ("variable \"a\" {\n  inner {\n}\n".to_owned(), 2, "nested"),
            (
                ok.replace("\"12.11.0.0/16\"", "\"12.11.0.1/16\""),
                21,
                "host bits",
            ),
            (
                ok.replace("var.vpc1_route_table_id\n", "var.nope\n"),
                0,
                "not declared",
            ),
            (ok.replace("aws.us_east_1", "aws.eu"), 0, "not declared"),
            (
                ok.replace(
                    "  network_interface_id   = var.vpn_virginia_network_interface_id\n",
                    "",
                ),
                18,
                "missing attribute",
            ),
        ] {
            let e = TerraformFile::parse(&text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(what), "{text}: {e}");
        }
    }

    fn arb_name() -> impl Strategy<Value = Name> {
        "[a-zA-Z0-9._-]{1,12}".prop_filter_map("name", |s| Name::new(s).ok())
    }

    fn arb_ident() -> impl Strategy<Value = Ident> {
        "[a-z_][a-z0-9_-]{0,12}".prop_filter_map("ident", |s| Ident::new(s).ok())
    }

    fn arb_hcl_string() -> impl Strategy<Value = HclString> {
        "[ -!#-\\[\\]-~]{0,20}".prop_filter_map("string", |s| HclString::new(s).ok())
    }

    fn arb_cidr() -> impl Strategy<Value = Cidr> {
        arb_net().prop_filter_map("cidr", |n| Cidr::new(n).ok())
    }

    fn arb_id_ref() -> impl Strategy<Value = IdRef> {
        prop_oneof![
            arb_ident().prop_map(IdRef::Var),
            arb_hcl_string().prop_map(IdRef::Literal)
        ]
    }

    prop_compose! {
        fn arb_route()(vpc in arb_name(), region in of(arb_name()), route_table in arb_name(),
            destination in arb_cidr(), target_instance in arb_name(), target_address in of(arb_ip())) -> CloudRoute {
            CloudRoute { vpc, region, route_table, destination, target_instance, target_address }
        }
    }

    fn arb_tables() -> impl Strategy<Value = RouteTables> {
        vec(arb_route(), 0..5).prop_map(|routes| {
            let mut seen = BTreeSet::new();
            let routes = routes
                .into_iter()
                .filter(|r| seen.insert((r.vpc.clone(), r.route_table.clone(), r.destination)))
                .collect();
            RouteTables { routes }
        })
    }

    /// A valid file: every referenced variable and alias is declared.
    fn arb_tf() -> impl Strategy<Value = TerraformFile> {
        (
            vec(arb_comment(), 0..3),
            vec((arb_ident(), arb_hcl_string()), 0..3),
            vec((arb_ident(), of(arb_hcl_string())), 0..3),
            vec(
                (
                    arb_ident(),
                    any::<bool>(),
                    arb_id_ref(),
                    arb_cidr(),
                    arb_id_ref(),
                ),
                0..4,
            ),
        )
            .prop_map(|(header, providers, vars, routes)| {
                let mut blocks = Vec::new();
                let mut aliases = BTreeSet::new();
                for (alias, region) in providers {
                    if aliases.insert(alias.clone()) {
                        blocks.push(Block::Provider(Provider { alias, region }));
                    }
                }
                let mut declared = BTreeSet::new();
                for (name, description) in vars {
                    if declared.insert(name.clone()) {
                        blocks.push(Block::Variable(Variable { name, description }));
                    }
                }
                let mut names = BTreeSet::new();
                for (name, with_provider, rt, dest, ni) in routes {
                    for id in [&rt, &ni] {
                        if let IdRef::Var(v) = id
                            && declared.insert(v.clone())
                        {
                            blocks.push(Block::Variable(Variable {
                                name: v.clone(),
                                description: None,
                            }));
                        }
                    }
                    let provider = if with_provider {
                        aliases.iter().next().cloned()
                    } else {
                        None
                    };
                    if names.insert(name.clone()) {
                        blocks.push(Block::Route(AwsRoute {
                            name,
                            provider,
                            route_table_id: rt,
                            destination_cidr_block: dest,
                            network_interface_id: ni,
                        }));
                    }
                }
                TerraformFile { header, blocks }
            })
    }

    proptest! {
        #[test]
        fn json_roundtrip(tables in arb_tables()) {
            let text = tables.emit();
            prop_assert_eq!(RouteTables::parse(&text), Ok(tables), "{}", text);
        }

        #[test]
        fn terraform_roundtrip(tf in arb_tf()) {
            prop_assert!(tf.validate().is_ok());
            let text = tf.emit();
            prop_assert_eq!(TerraformFile::parse(&text), Ok(tf), "{}", text);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,300}") {
            let _ = RouteTables::parse(&text);
            let _ = TerraformFile::parse(&text);
        }

        #[test]
        fn mutations_parse_or_fail_cleanly(tables in arb_tables(), tf in arb_tf(), index in any::<usize>(),
            c in prop_oneof![Just('"'), Just('='), Just('\n'), Just('{'), Just('}'), Just('.'), Just('#'), any::<char>()]) {
            if let Ok(t) = RouteTables::parse(&mutate(&tables.emit(), index, c)) {
                prop_assert_eq!(RouteTables::parse(&t.emit()), Ok(t));
            }
            if let Ok(t) = TerraformFile::parse(&mutate(&tf.emit(), index, c)) {
                prop_assert!(t.validate().is_ok());
                prop_assert_eq!(TerraformFile::parse(&t.emit()), Ok(t));
            }
        }
    }
}
