//! What webhooks announce: the fixed set of event types an endpoint may subscribe to, and which
//! terminal task status each task event stands for.

use crate::task::TaskStatus;
use crate::wire_enum;

wire_enum!(
    WebhookEventType, "webhook event type" {
        TaskCompleted => "task.completed",
        TaskFailed => "task.failed",
        TaskPartiallyFailed => "task.partially_failed",
        TaskCanceled => "task.canceled",
        PlanVersionPublished => "plan.version_published",
        TaskAwaitingApproval => "task.awaiting_approval",
        TaskApproved => "task.approved",
        TaskRejected => "task.rejected",
        SubscriptionsMigrationScheduled => "subscriptions.migration_scheduled",
        SubscriptionsMigrated => "subscriptions.migrated",
    }
);

impl WebhookEventType {
    /// The event a task reaching `status` announces; none for a status that is not terminal.
    pub fn for_task_status(status: TaskStatus) -> Option<Self> {
        match status {
            TaskStatus::Completed => Some(WebhookEventType::TaskCompleted),
            TaskStatus::Failed => Some(WebhookEventType::TaskFailed),
            TaskStatus::PartiallyFailed => Some(WebhookEventType::TaskPartiallyFailed),
            TaskStatus::Canceled => Some(WebhookEventType::TaskCanceled),
            TaskStatus::Pending | TaskStatus::InProgress => None,
        }
    }
}

/// Where webhook requests may go. By default nothing that resolves to a loopback, private,
/// shared (CGNAT), link-local, cloud-metadata, unspecified, broadcast or multicast address: a
/// webhook URL is the caller's choice and must not reach into the network Cutover runs in.
/// The allow-list (`CUTOVER_WEBHOOK_ALLOW_HOSTS`) lets internal receivers through: each entry
/// is a host name, matched exactly (case-insensitive) against the URL's host, or an IP address
/// or CIDR block, matched against every address the host resolves to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    hosts: Vec<String>,
    blocks: Vec<(std::net::IpAddr, u8)>,
}

impl AddressPolicy {
    /// Parses a comma-separated allow-list; an empty one refuses every internal address.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut policy = Self::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (address, bits) = match entry.split_once('/') {
                Some((address, bits)) => (address, Some(bits)),
                None => (entry, None),
            };
            match address.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
                Ok(ip) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    let bits = match bits {
                        None => max,
                        Some(bits) => bits
                            .parse::<u8>()
                            .ok()
                            .filter(|b| *b <= max)
                            .ok_or_else(|| format!("`{entry}`: the prefix length must be 0 to {max}"))?,
                    };
                    policy.blocks.push((ip, bits));
                }
                Err(_) if bits.is_none() && !entry.contains([' ', ':', '@']) => {
                    policy.hosts.push(entry.to_ascii_lowercase());
                }
                Err(_) => return Err(format!("`{entry}` is neither a host name nor an IP address or CIDR block")),
            }
        }
        Ok(policy)
    }

    /// Whether the URL's `host` is allowed by name, whatever it resolves to.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Why a request to `ip` is refused (`"loopback"`, `"private"`, …), or `None` when it may go.
    pub fn refusal(&self, ip: std::net::IpAddr) -> Option<&'static str> {
        let why = internal(ip)?;
        if self.blocks.iter().any(|(block, bits)| in_block(ip, *block, *bits)) {
            return None;
        }
        Some(why)
    }
}

/// What kind of internal address `ip` is, if it is one.
fn internal(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.octets() == [169, 254, 169, 254] || v4.octets() == [100, 100, 100, 200] {
                Some("a cloud metadata address")
            } else if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() {
                Some("a private address")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (carrier-grade NAT) address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if a == 0 {
                Some("an unspecified address")
            } else if v4.is_broadcast() || v4.is_multicast() || a >= 240 {
                Some("a broadcast, multicast or reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
                Some("a cloud metadata address")
            } else if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_multicast() {
                Some("a broadcast, multicast or reserved address")
            } else {
                None
            }
        }
    }
}

fn in_block(ip: std::net::IpAddr, block: std::net::IpAddr, bits: u8) -> bool {
    use std::net::IpAddr;
    let (ip, block, width) = match (ip, block) {
        (IpAddr::V4(ip), IpAddr::V4(block)) => (u128::from(u32::from(ip)), u128::from(u32::from(block)), 32),
        (IpAddr::V6(ip), IpAddr::V6(block)) => (u128::from(ip), u128::from(block), 128),
        (IpAddr::V6(ip), IpAddr::V4(_)) => match ip.to_ipv4_mapped() {
            Some(v4) => return in_block(IpAddr::V4(v4), block, bits),
            None => return false,
        },
        (IpAddr::V4(_), IpAddr::V6(_)) => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (ip >> shift) == (block >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_terminal_status_has_its_event_and_no_other_does() {
        for status in TaskStatus::ALL {
            assert_eq!(WebhookEventType::for_task_status(*status).is_some(), status.is_terminal(), "{status}");
        }
        assert_eq!(WebhookEventType::parse("task.partially_failed"), Ok(WebhookEventType::TaskPartiallyFailed));
        assert!(WebhookEventType::parse("task.started").is_err());
    }

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let none = AddressPolicy::default();
        for (address, why) in [
            ("127.0.0.1", "a loopback address"),
            ("10.1.2.3", "a private address"),
            ("172.16.0.1", "a private address"),
            ("192.168.1.1", "a private address"),
            ("100.64.0.1", "a shared (carrier-grade NAT) address"),
            ("169.254.169.254", "a cloud metadata address"),
            ("169.254.1.1", "a link-local address"),
            ("0.0.0.0", "an unspecified address"),
            ("::1", "a loopback address"),
            ("::ffff:127.0.0.1", "a loopback address"),
            ("fd00:ec2::254", "a cloud metadata address"),
            ("fc00::1", "a private address"),
            ("fe80::1", "a link-local address"),
        ] {
            assert_eq!(none.refusal(ip(address)), Some(why), "{address}");
        }
        assert_eq!(none.refusal(ip("93.184.216.34")), None);
        assert_eq!(none.refusal(ip("2606:2800:220:1::1")), None);

        let allowed = AddressPolicy::parse(" 127.0.0.1, 10.0.0.0/8 ,Hooks.Internal,fd00::/8").unwrap();
        assert_eq!(allowed.refusal(ip("127.0.0.1")), None);
        assert_eq!(allowed.refusal(ip("::ffff:127.0.0.1")), None);
        assert_eq!(allowed.refusal(ip("127.0.0.2")), Some("a loopback address"));
        assert_eq!(allowed.refusal(ip("10.200.0.1")), None);
        assert_eq!(allowed.refusal(ip("fd12::1")), None);
        assert_eq!(allowed.refusal(ip("169.254.169.254")), Some("a cloud metadata address"));
        assert!(allowed.allows_host("hooks.internal") && !allowed.allows_host("other.internal"));
        assert!(AddressPolicy::parse("10.0.0.0/33").is_err());
        assert!(AddressPolicy::parse("http://x").is_err());
        assert_eq!(AddressPolicy::parse(" , ").unwrap(), AddressPolicy::default());
    }
}
