//! Slot management (seed 003): a vaccination slot is a date, a hospital, a vaccine and a
//! quantity of doses, split across shard counters so that a rush on one slot spreads over
//! several items. The slot aggregate holds what is not a count: whether it is open, its
//! waiting list in order, and the doses it holds for the first in line. Reservations never
//! write it: they take a dose from a shard counter in their own transaction.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Aggregate, DomainError};

/// The bounded context's name: its table and event source (`clinicflow.vaccine`).
pub const CONTEXT: &str = "vaccine";

/// The key of shard `shard` of slot `slot_id`'s dose counter (doses taken from it), in the
/// slot-management table.
pub fn shard_key(slot_id: &str, shard: u8) -> String {
    format!("{CONTEXT}#{slot_id}#{shard}")
}

/// The doses shard `shard` of `shards` holds out of `quantity`: an even split, the first
/// shards one more when it does not divide.
pub fn shard_quantity(quantity: u32, shards: u8, shard: u8) -> i64 {
    let n = u32::from(shards.max(1));
    let base = quantity / n;
    i64::from(base + u32::from(u32::from(shard) < quantity % n))
}

/// The shard a reservation tries first: one chosen from its id, so that concurrent
/// reservations spread over the shards; then the others in order.
pub fn shard_order(reservation_id: &str, shards: u8) -> impl Iterator<Item = u8> {
    let n = shards.max(1);
    let start = (reservation_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % u32::from(n)) as u8;
    (0..n).map(move |i| (start + i) % n)
}

/// Whether a slot takes reservations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum SlotStatus {
    /// Takes reservations.
    Open,
    /// Closed by the administrator: keeps its reservations, takes no new one.
    Closed,
}

impl SlotStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A citizen on a slot's waiting list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    /// Their waiting-list entry (a reservation case in `waitlist`).
    pub entry_id: String,
    /// Who they are.
    pub patient_sub: String,
}

/// A dose held for the first in line until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDose {
    /// The entry it is held for.
    pub entry_id: String,
    /// Who they are.
    pub patient_sub: String,
    /// The shard it was taken from.
    pub shard: u8,
    /// Until when.
    pub expires_at: DateTime<Utc>,
}

/// The slot aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Slot id.
    pub id: String,
    /// Vaccination date.
    pub date: NaiveDate,
    /// Hospital id.
    pub hospital: String,
    /// Vaccine id.
    pub vaccine: String,
    /// Doses in all.
    pub quantity: u32,
    /// Shard counters.
    pub shards: u8,
    /// Open or closed.
    pub status: SlotStatus,
    /// Subscribers told of it (the fan-out happened).
    #[serde(default)]
    pub announced: bool,
    /// The waiting list, first in line first.
    #[serde(default)]
    pub waiting: Vec<Waiter>,
    /// Doses held for people who were first in line.
    #[serde(default)]
    pub held: Vec<HeldDose>,
}

impl Slot {
    /// The limit of shard `shard`'s counter.
    pub fn shard_limit(&self, shard: u8) -> i64 {
        shard_quantity(self.quantity, self.shards, shard)
    }
}

/// A validated slot registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSlot {
    /// Date.
    pub date: NaiveDate,
    /// Hospital id.
    pub hospital: String,
    /// Vaccine id.
    pub vaccine: String,
    /// Doses.
    pub quantity: u32,
    /// Shards.
    pub shards: u8,
}

/// The commands on a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Register it.
    Open(NewSlot),
    /// Add doses.
    AddDoses {
        /// How many.
        add: u32,
    },
    /// Close it.
    Close,
    /// Tell its subscribers, in batches of these cases.
    Announce {
        /// The subscribers' cases, batched.
        batches: Vec<Vec<String>>,
        /// The hospital's display name, for the SMS.
        hospital_name: String,
    },
    /// Put a citizen's entry on the waiting list.
    Wait(Waiter),
    /// A dose taken from `shard` comes back (a cancellation): offered to the first in line,
    /// held until `expires_at`, or back to the pool when no one waits.
    GiveBack {
        /// The shard it came from.
        shard: u8,
        /// The hold of an offer made now.
        expires_at: DateTime<Utc>,
    },
    /// An entry leaves: off the waiting list, and its held dose (if any) given back.
    Leave {
        /// The entry.
        entry_id: String,
        /// The hold of the offer its dose passes to.
        expires_at: DateTime<Utc>,
    },
    /// The citizen takes the dose held for their entry.
    TakeHeld {
        /// The entry.
        entry_id: String,
    },
    /// Holds that ended before `now` lapse; each dose passes to the next in line, held
    /// until `expires_at`, or back to the pool.
    Lapse {
        /// Now.
        now: DateTime<Utc>,
        /// The hold of the offers made now.
        expires_at: DateTime<Utc>,
    },
}

/// What happened to a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// An administrator registered the slot; its doses are split across `shards` counters.
    SlotOpened {
        /// Vaccination date (Korea).
        date: NaiveDate,
        /// Hospital id.
        #[schemars(length(min = 1, max = 40))]
        hospital: String,
        /// Vaccine id.
        #[schemars(length(min = 1, max = 40))]
        vaccine: String,
        /// Doses.
        #[schemars(range(min = 1))]
        quantity: u32,
        /// Shard counters.
        #[schemars(range(min = 1, max = 32))]
        shards: u8,
    },
    /// Doses added; `quantity` is the new total.
    DosesAdded {
        /// Doses added.
        #[schemars(range(min = 1))]
        add: u32,
        /// The new total.
        quantity: u32,
    },
    /// The slot takes no new reservation; those it has stay.
    SlotClosed {},
    /// A batch of the slot's subscribers to tell (the SMS notifier sends each one SMS).
    SlotAnnounced {
        /// The subscriptions (cases) to tell.
        subscribers: Vec<String>,
        /// Vaccination date.
        date: NaiveDate,
        /// Hospital display name.
        hospital_name: String,
        /// Vaccine id.
        vaccine: String,
    },
    /// A citizen's entry joined the waiting list.
    SlotWaitlisted {
        /// The entry.
        entry_id: String,
        /// Who.
        patient_sub: String,
    },
    /// A given-back dose is held for the first in line (who left the waiting list).
    SlotDoseHeld {
        /// The entry it is held for.
        entry_id: String,
        /// Who.
        patient_sub: String,
        /// Its shard.
        shard: u8,
        /// Until when.
        expires_at: DateTime<Utc>,
    },
    /// A dose went back to the pool (its shard counter gave it back in the same write).
    SlotDoseReturned {
        /// Its shard.
        shard: u8,
    },
    /// An entry left the waiting list (cancelled).
    SlotWaiterLeft {
        /// The entry.
        entry_id: String,
    },
    /// The citizen took the held dose: their reservation holds it now.
    SlotHeldTaken {
        /// The entry.
        entry_id: String,
    },
    /// A hold ended unanswered.
    SlotHoldLapsed {
        /// The entry.
        entry_id: String,
    },
}

/// Where a dose no longer held goes: to the next in line, or back to the pool.
fn pass_on(waiting: &mut Vec<Waiter>, shard: u8, expires_at: DateTime<Utc>, out: &mut Vec<Event>) {
    if waiting.is_empty() {
        out.push(Event::SlotDoseReturned { shard });
    } else {
        let next = waiting.remove(0);
        out.push(Event::SlotDoseHeld {
            entry_id: next.entry_id,
            patient_sub: next.patient_sub,
            shard,
            expires_at,
        });
    }
}

impl Aggregate for Slot {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        let (slot, command) = match (state, command) {
            (None, Command::Open(s)) => {
                return Ok(vec![Event::SlotOpened {
                    date: s.date,
                    hospital: s.hospital,
                    vaccine: s.vaccine,
                    quantity: s.quantity,
                    shards: s.shards,
                }]);
            }
            (Some(_), Command::Open(_)) => return Err(DomainError::IllegalTransition("the slot already exists".into())),
            (None, _) => return Err(DomainError::NotFound),
            (Some(slot), command) => (slot, command),
        };
        match command {
            Command::Open(_) => Err(DomainError::IllegalTransition("the slot already exists".into())),
            Command::AddDoses { add } => {
                if slot.status == SlotStatus::Closed {
                    return Err(DomainError::IllegalTransition("a closed slot takes no doses".into()));
                }
                let quantity = slot
                    .quantity
                    .checked_add(add)
                    .filter(|q| *q <= super::commands::MAX_QUANTITY)
                    .ok_or_else(|| {
                        DomainError::IllegalTransition(format!("a slot holds at most {} doses", super::commands::MAX_QUANTITY))
                    })?;
                Ok(vec![Event::DosesAdded { add, quantity }])
            }
            Command::Close => Ok(if slot.status == SlotStatus::Closed {
                vec![]
            } else {
                vec![Event::SlotClosed {}]
            }),
            Command::Announce { batches, hospital_name } => {
                if slot.announced {
                    return Ok(vec![]);
                }
                Ok(batches
                    .into_iter()
                    .filter(|b| !b.is_empty())
                    .map(|subscribers| Event::SlotAnnounced {
                        subscribers,
                        date: slot.date,
                        hospital_name: hospital_name.clone(),
                        vaccine: slot.vaccine.clone(),
                    })
                    .collect())
            }
            Command::Wait(w) => {
                if slot.waiting.iter().any(|x| x.patient_sub == w.patient_sub) || slot.held.iter().any(|h| h.patient_sub == w.patient_sub) {
                    return Err(DomainError::IllegalTransition("you are already on this slot's waiting list".into()));
                }
                if slot.status == SlotStatus::Closed {
                    return Err(DomainError::IllegalTransition("the slot is closed".into()));
                }
                Ok(vec![Event::SlotWaitlisted {
                    entry_id: w.entry_id,
                    patient_sub: w.patient_sub,
                }])
            }
            Command::GiveBack { shard, expires_at } => {
                let mut waiting = slot.waiting.clone();
                let mut out = Vec::new();
                pass_on(&mut waiting, shard, expires_at, &mut out);
                Ok(out)
            }
            Command::Leave { entry_id, expires_at } => {
                if slot.waiting.iter().any(|w| w.entry_id == entry_id) {
                    return Ok(vec![Event::SlotWaiterLeft { entry_id }]);
                }
                let Some(held) = slot.held.iter().find(|h| h.entry_id == entry_id) else {
                    return Ok(vec![]);
                };
                let mut waiting = slot.waiting.clone();
                let mut out = vec![Event::SlotWaiterLeft { entry_id }];
                pass_on(&mut waiting, held.shard, expires_at, &mut out);
                Ok(out)
            }
            Command::TakeHeld { entry_id } => {
                if slot.held.iter().any(|h| h.entry_id == entry_id) {
                    Ok(vec![Event::SlotHeldTaken { entry_id }])
                } else {
                    Err(DomainError::IllegalTransition("no dose is held for this entry".into()))
                }
            }
            Command::Lapse { now, expires_at } => {
                let mut waiting = slot.waiting.clone();
                let mut out = Vec::new();
                for h in slot.held.iter().filter(|h| h.expires_at <= now) {
                    out.push(Event::SlotHoldLapsed {
                        entry_id: h.entry_id.clone(),
                    });
                    pass_on(&mut waiting, h.shard, expires_at, &mut out);
                }
                Ok(out)
            }
        }
    }

    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        match (state, event) {
            (
                None,
                Event::SlotOpened {
                    date,
                    hospital,
                    vaccine,
                    quantity,
                    shards,
                },
            ) => Some(Slot {
                id: id.to_owned(),
                date: *date,
                hospital: hospital.clone(),
                vaccine: vaccine.clone(),
                quantity: *quantity,
                shards: *shards,
                status: SlotStatus::Open,
                announced: false,
                waiting: Vec::new(),
                held: Vec::new(),
            }),
            (Some(mut s), e) => {
                match e {
                    Event::SlotOpened { .. } => {}
                    Event::DosesAdded { quantity, .. } => s.quantity = *quantity,
                    Event::SlotClosed {} => s.status = SlotStatus::Closed,
                    Event::SlotAnnounced { .. } => s.announced = true,
                    Event::SlotWaitlisted { entry_id, patient_sub } => s.waiting.push(Waiter {
                        entry_id: entry_id.clone(),
                        patient_sub: patient_sub.clone(),
                    }),
                    Event::SlotDoseHeld {
                        entry_id,
                        patient_sub,
                        shard,
                        expires_at,
                    } => {
                        s.waiting.retain(|w| &w.entry_id != entry_id);
                        s.held.push(HeldDose {
                            entry_id: entry_id.clone(),
                            patient_sub: patient_sub.clone(),
                            shard: *shard,
                            expires_at: *expires_at,
                        });
                    }
                    Event::SlotDoseReturned { .. } => {}
                    Event::SlotWaiterLeft { entry_id } | Event::SlotHeldTaken { entry_id } | Event::SlotHoldLapsed { entry_id } => {
                        s.waiting.retain(|w| &w.entry_id != entry_id);
                        s.held.retain(|h| &h.entry_id != entry_id);
                    }
                }
                Some(s)
            }
            (None, _) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::given;

    fn opened(quantity: u32, shards: u8) -> Event {
        Event::SlotOpened {
            date: NaiveDate::from_ymd_opt(2027, 3, 2).expect("date"),
            hospital: "seoul-central".into(),
            vaccine: "pfizer".into(),
            quantity,
            shards,
        }
    }

    fn at(minute: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2027, 3, 1)
            .and_then(|d| d.and_hms_opt(9 + minute / 60, minute % 60, 0))
            .expect("time")
            .and_utc()
    }

    fn waits(entry: &str) -> Event {
        Event::SlotWaitlisted {
            entry_id: entry.into(),
            patient_sub: format!("sub-{entry}"),
        }
    }

    #[test]
    fn shards_split_the_doses_evenly_and_sum_to_the_quantity() {
        for (quantity, shards) in [(100, 8), (7, 3), (1, 4), (100_000, 32)] {
            let total: i64 = (0..shards).map(|s| shard_quantity(quantity, shards, s)).sum();
            assert_eq!(total, i64::from(quantity), "{quantity} over {shards}");
            let sizes: Vec<i64> = (0..shards).map(|s| shard_quantity(quantity, shards, s)).collect();
            assert!(
                sizes.iter().max().zip(sizes.iter().min()).is_some_and(|(a, b)| a - b <= 1),
                "{sizes:?}"
            );
        }
    }

    #[test]
    fn a_reservation_tries_every_shard_once_starting_from_one_its_id_picks() {
        let order: Vec<u8> = shard_order("01JRESERVATION0000000000AB", 8).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..8).collect::<Vec<_>>());
        let starts: std::collections::BTreeSet<u8> = (0..64).filter_map(|i| shard_order(&format!("01J{i:023}"), 8).next()).collect();
        assert!(starts.len() > 4, "ids spread over the shards: {starts:?}");
    }

    #[test]
    fn a_dose_given_back_goes_to_the_first_in_line_or_back_to_the_pool() {
        given::<Slot>("s1", [opened(10, 2)])
            .when(Command::GiveBack {
                shard: 1,
                expires_at: at(30),
            })
            .then([Event::SlotDoseReturned { shard: 1 }]);
        let slot = given::<Slot>("s1", [opened(10, 2), waits("e1"), waits("e2")])
            .when(Command::GiveBack {
                shard: 1,
                expires_at: at(30),
            })
            .then([Event::SlotDoseHeld {
                entry_id: "e1".into(),
                patient_sub: "sub-e1".into(),
                shard: 1,
                expires_at: at(30),
            }])
            .expect("a slot");
        assert_eq!(slot.waiting.len(), 1);
        assert_eq!(slot.held.len(), 1);
    }

    #[test]
    fn a_lapsed_hold_passes_its_dose_to_the_next_in_line_and_never_holds_it_twice() {
        let held = Event::SlotDoseHeld {
            entry_id: "e1".into(),
            patient_sub: "sub-e1".into(),
            shard: 0,
            expires_at: at(30),
        };
        given::<Slot>("s1", [opened(1, 1), waits("e1"), waits("e2"), held.clone()])
            .when(Command::Lapse {
                now: at(29),
                expires_at: at(59),
            })
            .then_nothing();
        let slot = given::<Slot>("s1", [opened(1, 1), waits("e1"), waits("e2"), held.clone()])
            .when(Command::Lapse {
                now: at(30),
                expires_at: at(60),
            })
            .then([
                Event::SlotHoldLapsed { entry_id: "e1".into() },
                Event::SlotDoseHeld {
                    entry_id: "e2".into(),
                    patient_sub: "sub-e2".into(),
                    shard: 0,
                    expires_at: at(60),
                },
            ])
            .expect("a slot");
        assert_eq!(slot.held.len(), 1, "one dose, one hold");
        given::<Slot>("s1", [opened(1, 1), waits("e1"), held])
            .when(Command::Lapse {
                now: at(31),
                expires_at: at(61),
            })
            .then([
                Event::SlotHoldLapsed { entry_id: "e1".into() },
                Event::SlotDoseReturned { shard: 0 },
            ]);
    }

    #[test]
    fn a_citizen_waits_once_per_slot_and_a_closed_slot_takes_no_one() {
        given::<Slot>("s1", [opened(1, 1), waits("e1")])
            .when(Command::Wait(Waiter {
                entry_id: "e9".into(),
                patient_sub: "sub-e1".into(),
            }))
            .then_refused(|e| matches!(e, DomainError::IllegalTransition(_)));
        given::<Slot>("s1", [opened(1, 1), Event::SlotClosed {}])
            .when(Command::Wait(Waiter {
                entry_id: "e2".into(),
                patient_sub: "sub-e2".into(),
            }))
            .then_refused(|e| matches!(e, DomainError::IllegalTransition(_)));
    }

    #[test]
    fn a_slot_is_announced_once() {
        let announce = || Command::Announce {
            batches: vec![vec!["a".into(), "b".into()], vec!["c".into()]],
            hospital_name: "서울중앙병원".into(),
        };
        let events = Slot::decide(given_state(&[opened(5, 1)]).as_ref(), announce()).expect("announced");
        assert_eq!(events.len(), 2);
        let mut all = vec![opened(5, 1)];
        all.extend(events);
        assert_eq!(Slot::decide(given_state(&all).as_ref(), announce()), Ok(vec![]));
    }

    fn given_state(events: &[Event]) -> Option<Slot> {
        events.iter().fold(None, |s, e| Slot::apply(s, "s1", e))
    }
}
