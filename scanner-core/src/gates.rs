//! Gate rules (check-in lists): which tickets a gate admits, and gates that redeem an add-on on its own.
//!
//! The organizer sets them per event at the issuer; every scanner of the event fetches them with its
//! keyring and manifest (`GET /v1/scanner/events/{event}/gates`, JSON below) and applies them itself, offline.
//! A gate that no rule names admits every ticket of the event (the rules only ever narrow a gate).
//!
//! ```json
//! {"format": "offline-tickets/gate-rules/v1", "event_id": 7,
//!  "ticket_type_names": ["Day pass", "VIP"], "addon_names": ["Drink voucher"],
//!  "gates": [{"gate": "VIP entrance", "ticket_types": [1]},
//!            {"gate": "Bar", "redeems_addon": 0}]}
//! ```
//!
//! - `ticket_types`: only tickets of these types pass this gate;
//! - `addons`: only tickets that include at least one of these add-ons pass;
//! - `redeems_addon`: an entry scan here redeems add-on `i` of the ticket (a drink voucher), once per
//!   ticket across all devices; the ticket itself is not admitted or used by it. A ticket without that
//!   add-on is refused.
//!
//! A refusal is [`crate::redemption::RefusalCode::WrongGate`] with a sentence a steward can act on
//! ("VIP entrance admits VIP only — this is a Day pass"). Exits are never restricted: anyone may leave by
//! any gate, except at a redeeming gate, which has no exit.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The format tag of gate rules JSON.
pub const GATE_RULES_FORMAT: &str = "offline-tickets/gate-rules/v1";
/// Most gates one event's rules may name.
pub const MAX_GATE_RULES: usize = 256;
/// Longest gate name (the redemption log's limit on texts).
pub const MAX_GATE_NAME_BYTES: usize = crate::redemption::document::MAX_TEXT_BYTES;
/// Largest gate rules JSON accepted.
pub const MAX_GATE_RULES_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GateRulesKind {
    #[error("gate rules are larger than {MAX_GATE_RULES_BYTES} bytes")]
    TooLarge,
    #[error("gate rules are not valid JSON: {0}")]
    Json(String),
    #[error("gate rules have format {0:?}, expected {GATE_RULES_FORMAT:?}")]
    Format(String),
    #[error("gate rules name more than {MAX_GATE_RULES} gates")]
    TooMany,
    #[error("gate name {0:?} is empty or longer than {MAX_GATE_NAME_BYTES} bytes")]
    GateName(String),
    #[error("gate {0:?} has more than one rule")]
    Duplicate(String),
    #[error("gate {0:?} names add-on {1}; a ticket has add-ons 0 to 15")]
    Addon(String, u8),
    #[error("gate {0:?} has an empty list (it would admit no ticket)")]
    EmptyList(String),
    #[error("a name list is longer than 256 entries or has a name longer than {MAX_GATE_NAME_BYTES} bytes")]
    Names,
}

/// One gate's rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRule {
    pub gate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_types: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addons: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeems_addon: Option<u8>,
}

/// An event's gate rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRules {
    pub format: String,
    pub event_id: u32,
    /// Ticket type names by index, for the steward's messages (may be empty).
    #[serde(default)]
    pub ticket_type_names: Vec<String>,
    /// Add-on names by index, for the steward's messages (may be empty).
    #[serde(default)]
    pub addon_names: Vec<String>,
    pub gates: Vec<GateRule>,
}

/// What a gate does with an entry scan of a genuine ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateCheck {
    /// Admit the ticket itself (the usual entry decision follows).
    Enter,
    /// Redeem this add-on of the ticket, once.
    Redeem(u8),
    /// Not at this gate: the steward's sentence.
    Wrong(String),
}

impl GateRules {
    /// Rules that restrict nothing.
    pub fn none(event_id: u32) -> Self {
        Self {
            format: GATE_RULES_FORMAT.to_owned(),
            event_id,
            ticket_type_names: Vec::new(),
            addon_names: Vec::new(),
            gates: Vec::new(),
        }
    }

    /// Parses and checks rules (JSON as served by the issuer).
    pub fn from_json(json: &str) -> crate::Result<Self> {
        if json.len() > MAX_GATE_RULES_BYTES {
            return Err(GateRulesKind::TooLarge.into());
        }
        let rules: Self = serde_json::from_str(json).map_err(|e| GateRulesKind::Json(e.to_string()))?;
        rules.check()?;
        Ok(rules)
    }

    /// Checks every limit [`Self::from_json`] checks (the issuer calls it before storing rules).
    pub fn check(&self) -> crate::Result<()> {
        if self.format != GATE_RULES_FORMAT {
            return Err(GateRulesKind::Format(self.format.clone()).into());
        }
        if self.gates.len() > MAX_GATE_RULES {
            return Err(GateRulesKind::TooMany.into());
        }
        for names in [&self.ticket_type_names, &self.addon_names] {
            if names.len() > 256 || names.iter().any(|n| n.len() > MAX_GATE_NAME_BYTES) {
                return Err(GateRulesKind::Names.into());
            }
        }
        for (i, rule) in self.gates.iter().enumerate() {
            let name = &rule.gate;
            if name.trim().is_empty() || name.len() > MAX_GATE_NAME_BYTES {
                return Err(GateRulesKind::GateName(name.clone()).into());
            }
            if self.gates[..i].iter().any(|r| r.gate == *name) {
                return Err(GateRulesKind::Duplicate(name.clone()).into());
            }
            for list in [&rule.ticket_types, &rule.addons].into_iter().flatten() {
                if list.is_empty() {
                    return Err(GateRulesKind::EmptyList(name.clone()).into());
                }
            }
            let addons = rule.addons.iter().flatten().chain(rule.redeems_addon.iter());
            if let Some(&bad) = addons.into_iter().find(|&&a| a > crate::redemption::record::MAX_ADDON) {
                return Err(GateRulesKind::Addon(name.clone(), bad).into());
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The rule of a gate, if it has one.
    pub fn rule(&self, gate: &str) -> Option<&GateRule> {
        self.gates.iter().find(|r| r.gate == gate)
    }

    fn type_name(&self, t: u8) -> String {
        self.ticket_type_names.get(usize::from(t)).cloned().unwrap_or_else(|| format!("ticket type {t}"))
    }

    fn addon_name(&self, a: u8) -> String {
        self.addon_names.get(usize::from(a)).cloned().unwrap_or_else(|| format!("add-on {a}"))
    }

    /// What `gate` does with an entry scan of a genuine ticket of type `ticket_type` with the add-on set
    /// `addons` (bit i = add-on i).
    pub fn check_entry(&self, gate: &str, ticket_type: u8, addons: u16) -> GateCheck {
        let Some(rule) = self.rule(gate) else {
            return GateCheck::Enter;
        };
        let list = |names: Vec<String>| names.join(", ");
        if let Some(types) = &rule.ticket_types {
            if !types.contains(&ticket_type) {
                let admits = list(types.iter().map(|&t| self.type_name(t)).collect());
                return GateCheck::Wrong(format!(
                    "{gate} admits {admits} only — this is a {}",
                    self.type_name(ticket_type)
                ));
            }
        }
        let has = |a: u8| addons & (1 << a) != 0;
        if let Some(wanted) = &rule.addons {
            if !wanted.iter().any(|&a| has(a)) {
                let admits = list(wanted.iter().map(|&a| self.addon_name(a)).collect());
                return GateCheck::Wrong(format!("{gate} admits tickets with {admits} only"));
            }
        }
        match rule.redeems_addon {
            Some(a) if has(a) => GateCheck::Redeem(a),
            Some(a) => {
                GateCheck::Wrong(format!("{gate} redeems {} and this ticket does not include it", self.addon_name(a)))
            }
            None => GateCheck::Enter,
        }
    }

    /// Whether an exit scan is possible at `gate` (not at a gate that redeems an add-on): `Err` is the
    /// steward's sentence.
    pub fn check_exit(&self, gate: &str) -> Result<(), String> {
        match self.rule(gate).and_then(|r| r.redeems_addon) {
            Some(a) => Err(format!("{gate} redeems {}; it has no exit", self.addon_name(a))),
            None => Ok(()),
        }
    }

    /// The add-on's name, for verdicts ("Drink voucher").
    pub fn addon_label(&self, a: u8) -> String {
        self.addon_name(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> GateRules {
        GateRules::from_json(
            r#"{"format":"offline-tickets/gate-rules/v1","event_id":7,"ticket_type_names":["Day pass","VIP"],
            "addon_names":["Drink voucher","Parking"],
            "gates":[{"gate":"VIP entrance","ticket_types":[1]},{"gate":"Bar","redeems_addon":0},
                     {"gate":"Car park","addons":[1]}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn gates_admit_by_type_and_addon() {
        let r = rules();
        assert_eq!(r.check_entry("Main", 0, 0), GateCheck::Enter, "a gate with no rule admits all");
        assert_eq!(r.check_entry("VIP entrance", 1, 0), GateCheck::Enter);
        assert_eq!(
            r.check_entry("VIP entrance", 0, 0),
            GateCheck::Wrong("VIP entrance admits VIP only — this is a Day pass".into())
        );
        assert_eq!(r.check_entry("Bar", 0, 0b01), GateCheck::Redeem(0));
        assert!(matches!(r.check_entry("Bar", 0, 0b10), GateCheck::Wrong(m) if m.contains("Drink voucher")));
        assert_eq!(r.check_entry("Car park", 0, 0b10), GateCheck::Enter);
        assert!(matches!(r.check_entry("Car park", 0, 0b01), GateCheck::Wrong(m) if m.contains("Parking")));
        assert!(r.check_exit("Bar").is_err());
        assert!(r.check_exit("VIP entrance").is_ok());
    }

    #[test]
    fn bad_rules_are_refused() {
        let base =
            |gates: &str| format!(r#"{{"format":"offline-tickets/gate-rules/v1","event_id":7,"gates":[{gates}]}}"#);
        assert!(matches!(
            GateRules::from_json(&base(r#"{"gate":"A"},{"gate":"A"}"#)),
            Err(crate::Error::GateRules(GateRulesKind::Duplicate(_)))
        ));
        assert!(matches!(
            GateRules::from_json(&base(r#"{"gate":"A","redeems_addon":16}"#)),
            Err(crate::Error::GateRules(GateRulesKind::Addon(_, 16)))
        ));
        assert!(matches!(
            GateRules::from_json(&base(r#"{"gate":"A","ticket_types":[]}"#)),
            Err(crate::Error::GateRules(GateRulesKind::EmptyList(_)))
        ));
        assert!(matches!(
            GateRules::from_json(&base(r#"{"gate":" "}"#)),
            Err(crate::Error::GateRules(GateRulesKind::GateName(_)))
        ));
        assert!(matches!(
            GateRules::from_json(&base(r#"{"gate":"A","x":1}"#)),
            Err(crate::Error::GateRules(GateRulesKind::Json(_)))
        ));
        assert!(matches!(
            GateRules::from_json(r#"{"format":"v0","event_id":7,"gates":[]}"#),
            Err(crate::Error::GateRules(GateRulesKind::Format(_)))
        ));
        assert!(matches!(
            GateRules::from_json(&" ".repeat(MAX_GATE_RULES_BYTES + 1)),
            Err(crate::Error::GateRules(GateRulesKind::TooLarge))
        ));
        let r = rules();
        assert_eq!(GateRules::from_json(&r.to_json()).ok(), Some(r));
    }
}
