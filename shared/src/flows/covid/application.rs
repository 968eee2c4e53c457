//! A citizen's application for a COVID test at the health centre (seed 002): taken at any
//! hour (`applied`) whether the test site is open or not, followed as the site reports
//! (`sampled`, then `negative` or `positive`, or `noshow`), withdrawn before the test at the
//! citizen's request, which the site decides, since only the site knows whether the sample
//! was taken. A negative result gets a certificate; a positive one, a transfer request.
//!
//! The health centre hears the site only by events, which may arrive late, twice or out of
//! order: an application moves forward only, and a result heard before the sample counts
//! as both.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::site::TestResult;
use crate::domain::{Aggregate, Contact, DomainError, FieldError, PersonName, parse_wire};

/// The bounded context's name: its table and event source (`clinicflow.healthcentre`).
pub const CONTEXT: &str = "healthcentre";

/// Where an application stands at the health centre.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum ApplicationStatus {
    /// Taken; on (or on its way to) the site's waiting list.
    Applied,
    /// Withdrawn before the test.
    Withdrawn,
    /// The sample was taken; the result is pending.
    Sampled,
    /// Negative: a certificate is issued.
    Negative,
    /// Positive: a transfer to isolation is requested.
    Positive,
    /// The citizen did not come.
    Noshow,
}

impl ApplicationStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        parse_wire(field, raw)
    }

    fn rank(self) -> u8 {
        match self {
            Self::Applied => 0,
            Self::Sampled => 1,
            Self::Negative | Self::Positive | Self::Noshow | Self::Withdrawn => 2,
        }
    }
}

/// A certificate the health centre issued, as the application keeps it (the sealed
/// document itself is the certificate's own aggregate, [`super::certificate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssuedCertificate {
    /// The certificate's id (its `cti`).
    pub id: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Until when it holds.
    pub expires_at: DateTime<Utc>,
}

/// The application aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// The application's id: the case's, in every centre.
    pub id: String,
    /// The citizen (`sub`), its owner.
    pub citizen_sub: String,
    /// The holder's name, for the certificate.
    pub holder: PersonName,
    /// The test site.
    pub site: String,
    /// The date asked for.
    pub date: NaiveDate,
    /// Where it stands.
    pub status: ApplicationStatus,
    /// A withdrawal asked and not yet decided by the site.
    pub withdrawal_requested: bool,
    /// When the sample was taken.
    pub sampled_at: Option<DateTime<Utc>>,
    /// The certificate, once issued.
    pub certificate: Option<IssuedCertificate>,
}

/// A validated application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApplication {
    /// The citizen.
    pub citizen_sub: String,
    /// The site.
    pub site: String,
    /// Its name, for the SMS.
    pub site_name: String,
    /// The date asked for.
    pub date: NaiveDate,
    /// Whom to text (the name is also the certificate's holder).
    pub contact: Contact,
}

/// What the site reported, as the health centre hears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteNews {
    /// The sample was taken.
    Sampled {
        /// When.
        at: DateTime<Utc>,
    },
    /// The result.
    Result {
        /// The result.
        result: TestResult,
        /// When the sample was taken.
        sampled_at: DateTime<Utc>,
    },
    /// The citizen did not come.
    Noshow,
    /// The site withdrew the application from its list.
    Withdrawn,
    /// The site refused the withdrawal: too late.
    WithdrawalRefused,
}

/// The commands on an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Apply.
    Apply(NewApplication),
    /// The citizen withdraws (the site decides).
    Withdraw,
    /// Follow the site.
    Hear(SiteNews),
    /// Record the certificate sealed for the negative result.
    Certify(IssuedCertificate),
}

/// What happened at the health centre.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// The citizen applied for a test.
    ApplicationSubmitted {
        /// The citizen (`sub`); the owner of the case.
        citizen_sub: String,
        /// The test site.
        site: String,
        /// Its name, for the SMS.
        site_name: String,
        /// The date asked for.
        date: NaiveDate,
        /// Whom to tell (kept by the SMS notifier in its own table); the certificate's holder.
        contact: Contact,
    },
    /// The citizen asked to withdraw; the site decides.
    WithdrawalRequested {
        /// The test site.
        site: String,
    },
    /// The site withdrew the application.
    ApplicationWithdrawn {},
    /// The site refused the withdrawal: the sample was taken, or a no-show marked.
    WithdrawalDeclined {},
    /// The site took the sample.
    ApplicationSampled {
        /// When.
        sampled_at: DateTime<Utc>,
    },
    /// The site recorded the result.
    ResultHeard {
        /// The result (never texted, never logged).
        result: TestResult,
        /// When the sample was taken.
        sampled_at: DateTime<Utc>,
    },
    /// The citizen did not come.
    ApplicationNoShow {},
    /// A negative result's certificate.
    CertificateIssued {
        /// The certificate.
        certificate: IssuedCertificate,
    },
    /// A positive result: the transfer centre is asked to transfer the citizen to isolation.
    TransferRequested {
        /// The test site.
        site: String,
    },
}

fn illegal(status: ApplicationStatus, what: &str) -> DomainError {
    DomainError::IllegalTransition(format!("a {} application cannot be {what}", status.as_str()))
}

impl Aggregate for Application {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        use ApplicationStatus::*;
        let a = match (state, command) {
            (None, Command::Apply(n)) => {
                return Ok(vec![Event::ApplicationSubmitted {
                    citizen_sub: n.citizen_sub,
                    site: n.site,
                    site_name: n.site_name,
                    date: n.date,
                    contact: n.contact,
                }]);
            }
            (Some(_), Command::Apply(_)) => return Err(DomainError::IllegalTransition("the application already exists".into())),
            (None, _) => return Err(DomainError::NotFound),
            (Some(a), command) => (a, command),
        };
        match a {
            (_, Command::Apply(_)) => Err(DomainError::IllegalTransition("the application already exists".into())),
            (a, Command::Withdraw) => match a.status {
                Applied if a.withdrawal_requested => Ok(vec![]),
                Applied => Ok(vec![Event::WithdrawalRequested { site: a.site.clone() }]),
                Withdrawn => Ok(vec![]),
                Sampled | Negative | Positive => Err(DomainError::IllegalTransition(
                    "the sample has been taken; the application can no longer be withdrawn".into(),
                )),
                Noshow => Err(illegal(Noshow, "withdrawn")),
            },
            (a, Command::Hear(news)) => Ok(hear(a, news)),
            (a, Command::Certify(certificate)) => match (a.status, &a.certificate) {
                (_, Some(_)) => Ok(vec![]),
                (Negative, None) => Ok(vec![Event::CertificateIssued { certificate }]),
                (status, None) => Err(illegal(status, "certified (only a negative result is)")),
            },
        }
    }

    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        match (state, event) {
            (
                None,
                Event::ApplicationSubmitted {
                    citizen_sub,
                    site,
                    date,
                    contact,
                    ..
                },
            ) => Some(Application {
                id: id.to_owned(),
                citizen_sub: citizen_sub.clone(),
                holder: contact.name.clone(),
                site: site.clone(),
                date: *date,
                status: ApplicationStatus::Applied,
                withdrawal_requested: false,
                sampled_at: None,
                certificate: None,
            }),
            (None, _) => None,
            (Some(mut a), e) => {
                match e {
                    Event::ApplicationSubmitted { .. } | Event::TransferRequested { .. } => {}
                    Event::WithdrawalRequested { .. } => a.withdrawal_requested = true,
                    Event::WithdrawalDeclined {} => a.withdrawal_requested = false,
                    Event::ApplicationWithdrawn {} => {
                        a.status = ApplicationStatus::Withdrawn;
                        a.withdrawal_requested = false;
                    }
                    Event::ApplicationSampled { sampled_at } => {
                        a.status = ApplicationStatus::Sampled;
                        a.sampled_at = Some(*sampled_at);
                        a.withdrawal_requested = false;
                    }
                    Event::ResultHeard { result, sampled_at } => {
                        a.status = match result {
                            TestResult::Negative => ApplicationStatus::Negative,
                            TestResult::Positive => ApplicationStatus::Positive,
                        };
                        a.sampled_at = Some(*sampled_at);
                        a.withdrawal_requested = false;
                    }
                    Event::ApplicationNoShow {} => {
                        a.status = ApplicationStatus::Noshow;
                        a.withdrawal_requested = false;
                    }
                    Event::CertificateIssued { certificate } => a.certificate = Some(certificate.clone()),
                }
                Some(a)
            }
        }
    }
}

/// What the site's news does to `a`: forward only; anything already known decides nothing.
fn hear(a: &Application, news: SiteNews) -> Vec<Event> {
    use ApplicationStatus::*;
    let settled = a.status.rank() >= 2;
    match news {
        SiteNews::Sampled { at } => match a.status {
            Applied => vec![Event::ApplicationSampled { sampled_at: at }],
            _ => vec![],
        },
        SiteNews::Result { result, sampled_at } => {
            if settled {
                return vec![];
            }
            let mut events = vec![Event::ResultHeard { result, sampled_at }];
            if result == TestResult::Positive {
                events.push(Event::TransferRequested { site: a.site.clone() });
            }
            events
        }
        SiteNews::Noshow => match a.status {
            Applied => vec![Event::ApplicationNoShow {}],
            _ => vec![],
        },
        SiteNews::Withdrawn => match a.status {
            Applied => vec![Event::ApplicationWithdrawn {}],
            _ => vec![],
        },
        SiteNews::WithdrawalRefused => match a.withdrawal_requested {
            true => vec![Event::WithdrawalDeclined {}],
            false => vec![],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Locale, PhoneNumber};

    fn applied() -> Application {
        let new = NewApplication {
            citizen_sub: "c1".into(),
            site: "mapo".into(),
            site_name: "마포구 선별진료소".into(),
            date: NaiveDate::from_ymd_opt(2027, 3, 2).expect("date"),
            contact: Contact {
                name: PersonName::parse("김서연").expect("name"),
                phone: PhoneNumber::parse("010-2222-3333").expect("phone"),
                locale: Locale::Ko,
            },
        };
        let events = Application::decide(None, Command::Apply(new)).expect("applied");
        events
            .iter()
            .fold(None, |s, e| Application::apply(s, "a1", e))
            .expect("an application")
    }

    fn after(a: &Application, command: Command) -> (Application, Vec<Event>) {
        let events = Application::decide(Some(a), command).expect("decided");
        let next = events
            .iter()
            .try_fold(a.clone(), |s, e| Application::apply(Some(s), "a1", e))
            .expect("an application");
        (next, events)
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_803_000_000, 0).expect("time")
    }

    fn certificate() -> IssuedCertificate {
        IssuedCertificate {
            id: "01JCERT0000000000000000000".into(),
            issued_at: at(),
            expires_at: at() + chrono::Duration::hours(48),
        }
    }

    #[test]
    fn a_withdrawal_is_asked_once_and_the_site_decides_it() {
        let a = applied();
        assert_eq!(a.holder.as_str(), "김서연");
        let (asked, events) = after(&a, Command::Withdraw);
        assert!(matches!(events.as_slice(), [Event::WithdrawalRequested { site }] if site == "mapo"));
        assert_eq!(after(&asked, Command::Withdraw).1, vec![], "asked twice: once");
        let (withdrawn, _) = after(&asked, Command::Hear(SiteNews::Withdrawn));
        assert_eq!(withdrawn.status, ApplicationStatus::Withdrawn);
        let (declined, events) = after(&asked, Command::Hear(SiteNews::WithdrawalRefused));
        assert_eq!(events, vec![Event::WithdrawalDeclined {}]);
        assert!(!declined.withdrawal_requested);
    }

    #[test]
    fn a_negative_result_is_certified_once_and_a_positive_one_asks_for_a_transfer() {
        let a = applied();
        let negative = SiteNews::Result {
            result: TestResult::Negative,
            sampled_at: at(),
        };
        assert!(
            Application::decide(Some(&a), Command::Certify(certificate())).is_err(),
            "no result yet"
        );
        let (done, events) = after(&a, Command::Hear(negative.clone()));
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(done.status, ApplicationStatus::Negative);
        assert_eq!(done.sampled_at, Some(at()), "a result heard before the sample counts as both");
        assert_eq!(after(&done, Command::Hear(negative)).1, vec![], "heard twice: once");
        assert_eq!(
            after(&done, Command::Hear(SiteNews::Sampled { at: at() })).1,
            vec![],
            "a late sample"
        );
        let (certified, events) = after(&done, Command::Certify(certificate()));
        assert_eq!(events.len(), 1);
        assert_eq!(certified.certificate, Some(certificate()));
        assert_eq!(after(&certified, Command::Certify(certificate())).1, vec![], "certified once");
        let positive = SiteNews::Result {
            result: TestResult::Positive,
            sampled_at: at(),
        };
        let (sick, events) = after(&a, Command::Hear(positive));
        assert_eq!(sick.status, ApplicationStatus::Positive);
        assert!(matches!(events.last(), Some(Event::TransferRequested { site }) if site == "mapo"));
        assert!(
            Application::decide(Some(&sick), Command::Withdraw).is_err(),
            "tested: no withdrawal"
        );
        assert!(
            Application::decide(Some(&sick), Command::Certify(certificate())).is_err(),
            "positive: no certificate"
        );
    }

    #[test]
    fn news_about_a_settled_application_changes_nothing() {
        let (noshow, _) = after(&applied(), Command::Hear(SiteNews::Noshow));
        assert_eq!(noshow.status, ApplicationStatus::Noshow);
        for news in [
            SiteNews::Sampled { at: at() },
            SiteNews::Withdrawn,
            SiteNews::Noshow,
            SiteNews::WithdrawalRefused,
        ] {
            assert_eq!(after(&noshow, Command::Hear(news)).1, vec![]);
        }
        assert_eq!(Application::decide(None, Command::Withdraw), Err(DomainError::NotFound));
    }
}
