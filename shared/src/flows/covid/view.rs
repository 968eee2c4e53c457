//! The COVID flow's status views (CQRS: what citizens and staff read, never the centres'
//! own tables): an application with everything the four centres said of it (its citizen's
//! view, and the test site's waiting list), a transfer (the transfer centre's open
//! requests), a stay (an isolation centre's occupants) and a certificate. Each centre's
//! events fold in as they come, in whatever order the four tables' streams deliver them;
//! the application's stage is computed from what is known, so that any order ends the same.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::application::{self, ApplicationStatus};
use super::certificate::{self, Content};
use super::site::{self, EntryStatus, TestResult};
use super::stay::{self, StayStatus};
use super::transfer::{self, TransferStatus};
use crate::app::projector::{Indexed, Versions, View};
use crate::events::{EventEnvelope, source_of};

/// The applications' view.
pub const APPLICATIONS: &str = "covid";
/// The transfers' view.
pub const TRANSFERS: &str = "covidtransfer";
/// The stays' view.
pub const STAYS: &str = "covidstay";
/// The certificates' view.
pub const CERTIFICATES: &str = "covidcert";

/// Where an application stands, all centres together.
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
pub enum Stage {
    /// Taken by the health centre; the site has not heard of it yet.
    Applied,
    /// On the test site's waiting list.
    Waiting,
    /// The sample was taken; the result is pending.
    Sampled,
    /// Negative (a certificate follows).
    Negative,
    /// Positive: a transfer to isolation is requested.
    Positive,
    /// Dispatched to an isolation centre.
    Dispatched,
    /// In isolation.
    Isolated,
    /// Released from isolation.
    Released,
    /// Withdrawn before the test.
    Withdrawn,
    /// The citizen did not come.
    Noshow,
}

impl Stage {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, crate::domain::FieldError> {
        crate::domain::parse_wire(field, raw)
    }
}

/// One step of an application's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = CovidTimelineEntry)]
pub struct TimelineEntry {
    /// What happened (`applied`, `waiting`, `withdrawal-requested`, `withdrawal-refused`,
    /// `withdrawn`, `sampled`, `result`, `certificate-issued`, `noshow`, `transfer-requested`,
    /// `dispatched`, `isolated`, `released`).
    pub status: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A certificate, as an application's view names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = CovidCertificateRef)]
pub struct CertificateRef {
    /// The certificate's id (`GET /covid/certificates/{id}`).
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// Until when it holds.
    pub expires_at: DateTime<Utc>,
}

/// A transfer, as an application's view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = CovidTransferState)]
pub struct TransferState {
    /// `requested`, `dispatched` or `closed`.
    pub status: TransferStatus,
    /// The isolation centre, once dispatched.
    #[schema(required = true)]
    pub isolation_centre: Option<String>,
}

/// A stay, as an application's view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = CovidIsolationState)]
pub struct StayState {
    /// `assigned`, `isolated` or `released`.
    pub status: StayStatus,
    /// The isolation centre.
    pub isolation_centre: String,
}

/// An application, as its view keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CovidView {
    /// The application's id.
    pub id: String,
    /// Its citizen ("" until the health centre's first event).
    #[serde(default)]
    pub citizen_sub: String,
    /// The citizen's name.
    pub name: Option<String>,
    /// The test site.
    pub site: Option<String>,
    /// Its name.
    pub site_name: Option<String>,
    /// The date asked for.
    pub date: Option<NaiveDate>,
    /// What the health centre says.
    pub application: Option<ApplicationStatus>,
    /// A withdrawal the site has not decided yet.
    pub withdrawal_requested: bool,
    /// The site refused the last withdrawal.
    pub withdrawal_refused: bool,
    /// What the test site says.
    pub entry: Option<EntryStatus>,
    /// When the sample was taken.
    pub sampled_at: Option<DateTime<Utc>>,
    /// The result.
    pub result: Option<TestResult>,
    /// The certificate.
    pub certificate: Option<CertificateRef>,
    /// The transfer.
    pub transfer: Option<TransferState>,
    /// The stay.
    pub stay: Option<StayState>,
    /// History.
    pub timeline: Vec<TimelineEntry>,
    /// When applied.
    pub created_at: Option<DateTime<Utc>>,
    /// Versions applied.
    pub versions: Versions,
}

impl CovidView {
    /// Records a step in time order, ties by name: the same view whatever the order.
    fn step(&mut self, status: &str, at: DateTime<Utc>) {
        let entry = TimelineEntry {
            status: status.to_owned(),
            at,
        };
        let key = |e: &TimelineEntry| (e.at, e.status.clone());
        let place = self.timeline.partition_point(|e| key(e) <= key(&entry));
        self.timeline.insert(place, entry);
    }

    /// Where the application stands, from everything known of it.
    pub fn stage(&self) -> Stage {
        let stay = self.stay.as_ref().map(|s| s.status);
        let transfer = self.transfer.as_ref().map(|t| t.status);
        let either = |a: ApplicationStatus, e: EntryStatus| self.application == Some(a) || self.entry == Some(e);
        if stay == Some(StayStatus::Released) || transfer == Some(TransferStatus::Closed) {
            Stage::Released
        } else if stay == Some(StayStatus::Isolated) {
            Stage::Isolated
        } else if stay.is_some() || transfer == Some(TransferStatus::Dispatched) {
            Stage::Dispatched
        } else if self.result == Some(TestResult::Positive) {
            Stage::Positive
        } else if self.result == Some(TestResult::Negative) {
            Stage::Negative
        } else if either(ApplicationStatus::Noshow, EntryStatus::Noshow) {
            Stage::Noshow
        } else if either(ApplicationStatus::Withdrawn, EntryStatus::Withdrawn) {
            Stage::Withdrawn
        } else if either(ApplicationStatus::Sampled, EntryStatus::Sampled) || self.entry == Some(EntryStatus::Resulted) {
            Stage::Sampled
        } else if self.entry == Some(EntryStatus::Waiting) {
            Stage::Waiting
        } else {
            Stage::Applied
        }
    }

    fn fold_health_centre(&mut self, e: &EventEnvelope) -> bool {
        use application::Event::*;
        let at = e.occurred_at;
        if let Ok(certificate::Event::CertificateSealed { .. }) = e.decode::<certificate::Event>() {
            // The certificate's own aggregate: the application's CertificateIssued says it.
            return true;
        }
        let Ok(event) = e.decode::<application::Event>() else {
            return false;
        };
        match event {
            ApplicationSubmitted {
                citizen_sub,
                site,
                site_name,
                date,
                contact,
            } => {
                self.citizen_sub = citizen_sub;
                self.name = Some(contact.name.as_str().to_owned());
                self.site = Some(site);
                self.site_name = Some(site_name);
                self.date = Some(date);
                self.created_at = Some(at);
                self.application = Some(ApplicationStatus::Applied);
                self.step("applied", at);
            }
            WithdrawalRequested { .. } => {
                self.withdrawal_requested = true;
                self.step("withdrawal-requested", at);
            }
            WithdrawalDeclined {} => self.withdrawal_requested = false,
            ApplicationWithdrawn {} => {
                self.application = Some(ApplicationStatus::Withdrawn);
                self.withdrawal_requested = false;
            }
            ApplicationSampled { sampled_at } => {
                self.application = Some(ApplicationStatus::Sampled);
                self.sampled_at.get_or_insert(sampled_at);
                self.withdrawal_requested = false;
            }
            ResultHeard { result, sampled_at } => {
                self.application = Some(match result {
                    TestResult::Negative => ApplicationStatus::Negative,
                    TestResult::Positive => ApplicationStatus::Positive,
                });
                self.result = Some(result);
                self.sampled_at.get_or_insert(sampled_at);
                self.withdrawal_requested = false;
            }
            ApplicationNoShow {} => {
                self.application = Some(ApplicationStatus::Noshow);
                self.withdrawal_requested = false;
            }
            CertificateIssued { certificate } => {
                self.certificate = Some(CertificateRef {
                    id: certificate.id,
                    expires_at: certificate.expires_at,
                });
                self.step("certificate-issued", at);
            }
            TransferRequested { .. } => {
                self.transfer.get_or_insert(TransferState {
                    status: TransferStatus::Requested,
                    isolation_centre: None,
                });
                self.step("transfer-requested", at);
            }
        }
        true
    }

    fn fold_site(&mut self, e: &EventEnvelope) -> bool {
        use site::Event::*;
        let Ok(event) = e.decode::<site::Event>() else {
            return false;
        };
        let at = e.occurred_at;
        match event {
            SiteEntryQueued { site, .. } => {
                self.site.get_or_insert(site);
                self.entry.get_or_insert(EntryStatus::Waiting);
                self.step("waiting", at);
            }
            SiteEntryWithdrawn { .. } => {
                self.entry = Some(EntryStatus::Withdrawn);
                self.withdrawal_requested = false;
                self.step("withdrawn", at);
            }
            WithdrawalRefused { .. } => {
                self.withdrawal_refused = true;
                self.step("withdrawal-refused", at);
            }
            SampleTaken { sampled_at, .. } => {
                self.entry = Some(EntryStatus::Sampled);
                self.sampled_at = Some(sampled_at);
                self.step("sampled", at);
            }
            ResultRecorded { result, sampled_at, .. } => {
                self.entry = Some(EntryStatus::Resulted);
                self.result = Some(result);
                self.sampled_at = Some(sampled_at);
                self.step("result", at);
            }
            NoShowMarked { .. } => {
                self.entry = Some(EntryStatus::Noshow);
                self.step("noshow", at);
            }
        }
        true
    }

    fn fold_transfer(&mut self, e: &EventEnvelope) -> bool {
        use transfer::Event::*;
        let Ok(event) = e.decode::<transfer::Event>() else {
            return false;
        };
        let at = e.occurred_at;
        let state = self.transfer.get_or_insert(TransferState {
            status: TransferStatus::Requested,
            isolation_centre: None,
        });
        match event {
            TransferOpened { .. } => {}
            TransferDispatched { centre, .. } => {
                if state.status == TransferStatus::Requested {
                    state.status = TransferStatus::Dispatched;
                }
                state.isolation_centre = Some(centre);
                self.step("dispatched", at);
            }
            TransferClosed { centre } => {
                state.status = TransferStatus::Closed;
                state.isolation_centre = Some(centre);
            }
        }
        true
    }

    fn fold_isolation(&mut self, e: &EventEnvelope) -> bool {
        use stay::Event::*;
        let Ok(event) = e.decode::<stay::Event>() else {
            return false;
        };
        let at = e.occurred_at;
        let (centre, status, step) = match event {
            StayAssigned { centre } => (centre, StayStatus::Assigned, None),
            StayAdmitted { centre, .. } => (centre, StayStatus::Isolated, Some("isolated")),
            StayReleased { centre, .. } => (centre, StayStatus::Released, Some("released")),
        };
        let rank = |s: StayStatus| match s {
            StayStatus::Assigned => 0,
            StayStatus::Isolated => 1,
            StayStatus::Released => 2,
        };
        match &mut self.stay {
            Some(s) if rank(s.status) >= rank(status) => {}
            slot => {
                *slot = Some(StayState {
                    status,
                    isolation_centre: centre,
                })
            }
        }
        if let Some(step) = step {
            self.step(step, at);
        }
        true
    }
}

impl View for CovidView {
    const NAME: &'static str = APPLICATIONS;

    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Default::default()
        }
    }

    fn apply(&mut self, e: &EventEnvelope) -> bool {
        if e.source == source_of(application::CONTEXT) {
            self.fold_health_centre(e)
        } else if e.source == source_of(site::CONTEXT) {
            self.fold_site(e)
        } else if e.source == source_of(transfer::CONTEXT) {
            self.fold_transfer(e)
        } else if e.source == source_of(stay::CONTEXT) {
            self.fold_isolation(e)
        } else {
            false
        }
    }

    fn versions(&mut self) -> &mut Versions {
        &mut self.versions
    }

    fn index(&self) -> Indexed {
        let stage = self.stage();
        Indexed {
            owner: self.citizen_sub.clone(),
            date: self.date.map(|d| d.to_string()),
            status: Some(stage.as_str().to_owned()),
            // The site's waiting list: the applications waiting there.
            queue: (stage == Stage::Waiting).then(|| self.site.clone()).flatten(),
            category: self.site.clone(),
            created_at: self.created_at,
        }
    }
}

/// An application as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(
    as = CovidApplication,
    description = "A COVID test application, as every centre reported it: its stage, the site, the result once known, the \
                   certificate once issued, the transfer and the isolation, and the timeline."
)]
pub struct CovidResponse {
    /// The application's id.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// Where it stands, all centres together.
    pub status: Stage,
    /// The citizen's name.
    pub name: String,
    /// The test site.
    pub site: String,
    /// Its name.
    pub site_name: String,
    /// The date asked for.
    pub date: NaiveDate,
    /// A withdrawal: `requested` (the site decides), `refused` (too late), or null.
    #[schema(required = true, example = "requested")]
    pub withdrawal: Option<String>,
    /// When the sample was taken; null before.
    #[schema(required = true)]
    pub sampled_at: Option<DateTime<Utc>>,
    /// `negative` or `positive`; null before.
    #[schema(required = true)]
    pub result: Option<TestResult>,
    /// The certificate, once issued (negative results); null otherwise.
    #[schema(required = true)]
    pub certificate: Option<CertificateRef>,
    /// The transfer (positive results); null otherwise.
    #[schema(required = true)]
    pub transfer: Option<TransferState>,
    /// The stay at an isolation centre; null otherwise.
    #[schema(required = true)]
    pub isolation: Option<StayState>,
    /// History.
    pub timeline: Vec<TimelineEntry>,
    /// When applied.
    pub created_at: DateTime<Utc>,
}

impl CovidView {
    /// The API's view, once the health centre's first event is in (only its citizen and the
    /// staff of the centres involved read it: `queries::application`).
    pub fn into_response(self) -> Option<CovidResponse> {
        let status = self.stage();
        let withdrawal = if self.withdrawal_requested && matches!(status, Stage::Applied | Stage::Waiting) {
            Some("requested".to_owned())
        } else if self.withdrawal_refused {
            Some("refused".to_owned())
        } else {
            None
        };
        Some(CovidResponse {
            status,
            name: self.name?,
            site: self.site?,
            site_name: self.site_name?,
            date: self.date?,
            withdrawal,
            sampled_at: self.sampled_at,
            result: self.result,
            certificate: self.certificate,
            transfer: self.transfer,
            isolation: self.stay,
            timeline: self.timeline,
            created_at: self.created_at?,
            id: self.id,
        })
    }
}

/// A transfer, as the transfer centre's list keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    /// The application's id.
    pub id: String,
    /// The test site.
    pub site: Option<String>,
    /// Where it stands.
    pub status: Option<TransferStatus>,
    /// The isolation centre.
    pub centre: Option<String>,
    /// When it was requested.
    pub created_at: Option<DateTime<Utc>>,
    /// Versions applied.
    pub versions: Versions,
}

impl View for TransferView {
    const NAME: &'static str = TRANSFERS;

    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Default::default()
        }
    }

    fn apply(&mut self, e: &EventEnvelope) -> bool {
        use transfer::Event::*;
        let Ok(event) = e.decode::<transfer::Event>() else {
            return false;
        };
        match event {
            TransferOpened { site } => {
                self.site = Some(site);
                self.status.get_or_insert(TransferStatus::Requested);
                self.created_at = Some(e.occurred_at);
            }
            TransferDispatched { centre, .. } => {
                self.status = Some(TransferStatus::Dispatched);
                self.centre = Some(centre);
            }
            TransferClosed { centre } => {
                self.status = Some(TransferStatus::Closed);
                self.centre = Some(centre);
            }
        }
        true
    }

    fn versions(&mut self) -> &mut Versions {
        &mut self.versions
    }

    fn index(&self) -> Indexed {
        Indexed {
            owner: String::new(),
            date: None,
            status: self.status.map(|s| s.as_str().to_owned()),
            queue: None,
            category: self.centre.clone(),
            created_at: self.created_at,
        }
    }
}

/// A transfer as the transfer centre's list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = CovidTransfer, description = "A transfer to isolation, as the transfer centre works it.")]
pub struct TransferResponse {
    /// The application's id.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// The test site that found the result.
    pub site: String,
    /// `requested`, `dispatched` or `closed`.
    pub status: TransferStatus,
    /// The isolation centre; null before the dispatch.
    #[schema(required = true)]
    pub isolation_centre: Option<String>,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
}

impl TransferView {
    /// The API's view, once the request is in.
    pub fn into_response(self) -> Option<TransferResponse> {
        Some(TransferResponse {
            site: self.site?,
            status: self.status?,
            isolation_centre: self.centre,
            created_at: self.created_at?,
            id: self.id,
        })
    }
}

/// A stay, as an isolation centre's list keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StayView {
    /// The application's id.
    pub id: String,
    /// The isolation centre.
    pub centre: Option<String>,
    /// Where it stands.
    pub status: Option<StayStatus>,
    /// When it was assigned.
    pub created_at: Option<DateTime<Utc>>,
    /// When admitted.
    pub admitted_at: Option<DateTime<Utc>>,
    /// When released.
    pub released_at: Option<DateTime<Utc>>,
    /// Versions applied.
    pub versions: Versions,
}

impl View for StayView {
    const NAME: &'static str = STAYS;

    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Default::default()
        }
    }

    fn apply(&mut self, e: &EventEnvelope) -> bool {
        use stay::Event::*;
        let Ok(event) = e.decode::<stay::Event>() else {
            return false;
        };
        match event {
            StayAssigned { centre } => {
                self.centre = Some(centre);
                self.status.get_or_insert(StayStatus::Assigned);
                self.created_at = Some(e.occurred_at);
            }
            StayAdmitted { centre, .. } => {
                self.centre = Some(centre);
                self.status = Some(StayStatus::Isolated);
                self.admitted_at = Some(e.occurred_at);
            }
            StayReleased { centre, .. } => {
                self.centre = Some(centre);
                self.status = Some(StayStatus::Released);
                self.released_at = Some(e.occurred_at);
            }
        }
        true
    }

    fn versions(&mut self) -> &mut Versions {
        &mut self.versions
    }

    fn index(&self) -> Indexed {
        Indexed {
            owner: String::new(),
            date: None,
            status: self.status.map(|s| s.as_str().to_owned()),
            queue: None,
            category: self.centre.clone(),
            created_at: self.created_at,
        }
    }
}

/// A stay as an isolation centre's list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = CovidStay, description = "A citizen's stay at an isolation centre.")]
pub struct StayResponse {
    /// The application's id.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// The isolation centre.
    pub isolation_centre: String,
    /// `assigned`, `isolated` or `released`.
    pub status: StayStatus,
    /// When the dispatch reached the centre.
    pub created_at: DateTime<Utc>,
    /// When admitted; null before.
    #[schema(required = true)]
    pub admitted_at: Option<DateTime<Utc>>,
    /// When released; null before.
    #[schema(required = true)]
    pub released_at: Option<DateTime<Utc>>,
}

impl StayView {
    /// The API's view, once the dispatch reached the centre.
    pub fn into_response(self) -> Option<StayResponse> {
        Some(StayResponse {
            isolation_centre: self.centre?,
            status: self.status?,
            created_at: self.created_at?,
            admitted_at: self.admitted_at,
            released_at: self.released_at,
            id: self.id,
        })
    }
}

/// A certificate, as its view keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateView {
    /// The certificate's id.
    pub id: String,
    /// The application it certifies.
    pub application_id: Option<String>,
    /// Its citizen.
    #[serde(default)]
    pub citizen_sub: String,
    /// What it says.
    pub content: Option<Content>,
    /// The sealed document.
    pub payload: Option<String>,
    /// Versions applied.
    pub versions: Versions,
}

impl View for CertificateView {
    const NAME: &'static str = CERTIFICATES;

    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Default::default()
        }
    }

    /// One view per certificate, not per application.
    fn key(event: &EventEnvelope) -> String {
        event.aggregate_id.clone()
    }

    /// Only the certificates of the health centre's table, not its applications.
    fn folds(event: &EventEnvelope) -> bool {
        event.event_type == "CertificateSealed"
    }

    fn apply(&mut self, e: &EventEnvelope) -> bool {
        let Ok(certificate::Event::CertificateSealed {
            application_id,
            citizen_sub,
            content,
            payload,
        }) = e.decode::<certificate::Event>()
        else {
            return false;
        };
        self.application_id = Some(application_id);
        self.citizen_sub = citizen_sub;
        self.content = Some(content);
        self.payload = Some(payload);
        true
    }

    fn versions(&mut self) -> &mut Versions {
        &mut self.versions
    }

    fn index(&self) -> Indexed {
        Indexed {
            owner: self.citizen_sub.clone(),
            date: None,
            status: None,
            queue: None,
            category: None,
            created_at: self.content.as_ref().map(|c| c.issued_at),
        }
    }
}

/// A certificate as its citizen reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(
    as = CovidCertificate,
    description = "A negative test's certificate, and its QR payload (`CF1:` and Base45 of a COSE_Sign1 signed with ES256), which \
                   anyone verifies offline with the key of `GET /covid/certificates/key`, or at `POST /covid/certificates/verify`."
)]
pub struct CertificateResponse {
    /// The certificate's id.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// The application it certifies.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub application_id: String,
    /// The holder.
    pub holder: String,
    /// The test.
    #[schema(example = "RT-PCR")]
    pub test_type: String,
    /// When the sample was taken.
    pub sampled_at: DateTime<Utc>,
    /// `negative`.
    pub result: TestResult,
    /// The test site.
    pub site_name: String,
    /// The issuer.
    pub issuer: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Until when it holds.
    pub expires_at: DateTime<Utc>,
    /// The QR code's content.
    #[schema(pattern = "^CF1:[0-9A-Z $%*+./:-]+$", example = "CF1:6BF...")]
    pub qr_payload: String,
}

impl CertificateView {
    /// The API's view, once sealed.
    pub fn into_response(self) -> Option<CertificateResponse> {
        let c = self.content?;
        Some(CertificateResponse {
            application_id: self.application_id?,
            holder: c.holder.as_str().to_owned(),
            test_type: c.test_type,
            sampled_at: c.sampled_at,
            result: c.result,
            site_name: c.site_name,
            issuer: c.issuer,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
            qr_payload: self.payload?,
            id: self.id,
        })
    }
}
