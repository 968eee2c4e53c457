//! The COVID slice's samples: 김서연 applies at the Mapo test site, her sample is taken and
//! found negative, and the health centre seals her certificate; 이준호 applies at Gangnam, is
//! found positive, dispatched to the Incheon isolation centre and admitted there; 박지민
//! waits on Mapo's list (the seeds, in that order, each settled: every centre has heard the
//! others before the next seed runs). What each sample gets; every domain event of the four
//! centres (health centre, test site, transfer centre, isolation centre) and what their
//! schemas must refuse.

use chrono::{DateTime, NaiveDate, Utc};
use clinicflow::domain::{Contact, Locale, PersonName, PhoneNumber};
use clinicflow::events::{Causality, EventEnvelope};
use clinicflow::flows::covid::application::{self, IssuedCertificate};
use clinicflow::flows::covid::certificate::{self, Content};
use clinicflow::flows::covid::site::{self, EntryStatus, TestResult};
use clinicflow::flows::covid::view::{CovidView, Stage};
use clinicflow::flows::covid::{stay, transfer};
use serde_json::{Value, json};

use super::{Edit, Fixture, Schemas, remove};

/// The COVID slice's samples.
pub const FIXTURE: Fixture = Fixture {
    slice: "covid",
    // A Tuesday morning in Korea (09:30): the tests are asked for 2027-03-02 and 03-03.
    now: "2027-03-02T00:30:00Z",
    // The ids the seeds take, in order (applications, the certificate and event ids): the
    // negative application is the first, its certificate the eighth, the positive
    // application the eleventh, the waiting one the twenty-third.
    ids: &[
        NEGATIVE,                     // 김서연's application, applied
        "01KJCV00000000000000000001", // ApplicationSubmitted
        "01KJCV00000000000000000002", // SiteEntryQueued (covid-site-queue)
        "01KJCV00000000000000000003", // SampleTaken
        "01KJCV00000000000000000004", // ApplicationSampled (covid-centre-follow)
        "01KJCV00000000000000000005", // ResultRecorded
        "01KJCV00000000000000000006", // ResultHeard (covid-centre-follow)
        CERTIFICATE,                  // her certificate (covid-certify)
        "01KJCV00000000000000000008", // CertificateSealed
        "01KJCV00000000000000000009", // CertificateIssued
        POSITIVE,                     // 이준호's application, applied
        "01KJCV00000000000000000011", // ApplicationSubmitted
        "01KJCV00000000000000000012", // SiteEntryQueued
        "01KJCV00000000000000000013", // SampleTaken
        "01KJCV00000000000000000014", // ApplicationSampled
        "01KJCV00000000000000000015", // ResultRecorded
        "01KJCV00000000000000000016", // ResultHeard
        "01KJCV00000000000000000017", // TransferRequested
        "01KJCV00000000000000000018", // TransferOpened (covid-transfer-follow)
        "01KJCV00000000000000000019", // TransferDispatched
        "01KJCV00000000000000000020", // StayAssigned (covid-isolation-assign)
        "01KJCV00000000000000000021", // StayAdmitted
        WAITING,                      // 박지민's application, applied
        "01KJCV00000000000000000023", // ApplicationSubmitted
        "01KJCV00000000000000000024", // SiteEntryQueued
        "01KJCV00000000000000000025",
        "01KJCV00000000000000000026",
        "01KJCV00000000000000000027",
    ],
    seeds: &[
        "covid-apply/apply.json",
        "covid-sample/sample.json",
        "covid-result/result.json",
        "covid-apply/apply-gangnam.json",
        "covid-sample/sample-gangnam.json",
        "covid-result/result-positive.json",
        "covid-dispatch/dispatch.json",
        "covid-admit/admit.json",
        "covid-apply/apply-waiting.json",
    ],
    case: NEGATIVE,
    view_id: |id| clinicflow::app::projector::view_id(clinicflow::flows::covid::view::APPLICATIONS, id),
    // On the seeded platform: 김서연's result is negative and her certificate issued;
    // 이준호 is in isolation at Incheon (a bed taken there); 박지민 waits at Mapo (its count
    // is one).
    expected: &[
        ("covid-apply/apply.json", 201),
        ("covid-apply/apply-gangnam.json", 201),
        ("covid-apply/apply-waiting.json", 201),
        ("covid-apply/unknown-site.json", 422),
        ("covid-apply/missing-phone.json", 422),
        ("covid-apply/date-too-far.json", 422),
        ("covid-withdraw/withdraw.json", 202),
        ("covid-withdraw/sampled.json", 409),
        ("covid-withdraw/another-citizens.json", 404),
        ("covid-sample/sample.json", 200),
        ("covid-sample/sample-gangnam.json", 200),
        ("covid-sample/sample-waiting.json", 200),
        ("covid-sample/another-site.json", 404),
        ("covid-sample/no-site.json", 403),
        ("covid-result/result.json", 200),
        ("covid-result/result-positive.json", 200),
        ("covid-result/before-sample.json", 409),
        ("covid-result/another-result.json", 409),
        ("covid-result/unknown-result.json", 422),
        ("covid-result/missing-result.json", 422),
        ("covid-noshow/noshow.json", 200),
        ("covid-noshow/sampled.json", 409),
        ("covid-dispatch/dispatch.json", 200),
        ("covid-dispatch/unknown-centre.json", 422),
        ("covid-dispatch/dispatched-elsewhere.json", 409),
        ("covid-dispatch/no-transfer.json", 404),
        ("covid-admit/admit.json", 200),
        ("covid-admit/not-dispatched.json", 409),
        ("covid-admit/another-centre.json", 404),
        ("covid-release/release.json", 200),
        ("covid-release/another-centre.json", 404),
        ("covid-release/no-centre.json", 403),
        ("covid-query/application.json", 200),
        ("covid-query/application-as-test-site.json", 200),
        ("covid-query/application-as-transfer-centre.json", 200),
        ("covid-query/application-as-isolation-centre.json", 200),
        ("covid-query/application-of-another-site.json", 404),
        ("covid-query/application-of-another-citizen.json", 404),
        ("covid-query/my-applications.json", 200),
        ("covid-query/my-applications-unknown-status.json", 422),
        ("covid-query/site-queue.json", 200),
        ("covid-query/site-queue-of-another-site.json", 403),
        ("covid-query/site-queue-unknown-site.json", 422),
        ("covid-query/transfers.json", 200),
        ("covid-query/transfers-unknown-status.json", 422),
        ("covid-query/isolation-centre.json", 200),
        ("covid-query/isolation-centre-of-another-centre.json", 403),
        ("covid-query/certificate.json", 200),
        ("covid-query/certificate-of-another-citizen.json", 404),
        ("covid-certificates/key.json", 200),
        ("covid-certificates/verify-unknown-key.json", 200),
        ("covid-certificates/verify-not-a-certificate.json", 200),
        ("covid-certificates/verify-empty-payload.json", 422),
    ],
    jobs: &[],
    envelopes,
    refusals,
    stream_view,
};

const NEGATIVE: &str = "01KJCV00000000000000000000";
const CERTIFICATE: &str = "01KJCV00000000000000000007";
const POSITIVE: &str = "01KJCV00000000000000000010";
const WAITING: &str = "01KJCV00000000000000000022";

/// A certificate's QR payload, as the health centre seals one (`CF1:` and Base45).
const SEALED: &str = "CF1:RRQT 9O60GO06$IU124TA2JM8CKNFNG80X33XVD5/DLPC*VDV2F+8DAECAWEB441$CKWEUYCDF3RCH$8HDF3R.G%8H96B746EN93N8646646646646646646646646646D46Q.C*3E6VC*KEEUTJDGIYG.+TLDM7WE QE4.C*SAR6A%IAHQEQ$DTVD0VCIECA8FNF6UF63W56L6846.SAG469L61G71466461G7F56ZKE$QE:VD49D* CIEC/ED  CPQE7WEA8FRZT/DHF7IAUT9YLN+TKFKBVMD-T7 GIUKP+TIXHW488*LTO6/F3VV5M/1ERAR13B+4+II+2AMV7 MA5LNHZBT5QB5KD9RTMQ12KHSKKAB-THPLKR6E7.7F1BOQ8N:JIB8V8PHD7B1";

/// What a stream sample (the four centres' tables' changes of 김서연's application) leaves
/// in the application's view: the stage every centre's events together give.
fn stream_view(rel: &str, body: &Value) {
    let want = [
        ("covid-negative-certified", Stage::Negative),
        ("covid-positive-released", Stage::Released),
        ("covid-withdrawn", Stage::Withdrawn),
        ("covid-noshow", Stage::Noshow),
    ]
    .into_iter()
    .find(|(sample, _)| rel.contains(sample))
    .map(|(_, stage)| stage)
    .unwrap_or_else(|| panic!("{rel}: say what it leaves in the view"));
    let view: CovidView = serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{rel}: not a COVID view: {e}"));
    assert_eq!(view.stage(), want, "{rel}: {body:#}");
    assert_eq!(view.name.as_deref(), Some("김서연"), "{rel}");
    assert_eq!(view.site.as_deref(), Some("mapo"), "{rel}");
    assert!(!view.timeline.is_empty(), "{rel}: a timeline");
    if rel.contains("covid-negative-certified") {
        assert!(view.certificate.is_some(), "{rel}: the certificate is issued: {body:#}");
    }
    if rel.contains("covid-positive-released") {
        assert_eq!(view.result, Some(TestResult::Positive), "{rel}");
        assert!(view.stay.is_some() && view.transfer.is_some(), "{rel}: {body:#}");
    }
}

fn contact(name: &str, phone: &str, locale: Locale) -> Contact {
    Contact {
        name: PersonName::parse(name).expect("a valid name"),
        phone: PhoneNumber::parse(phone).expect("a valid phone"),
        locale,
    }
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a valid date")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("a valid time").with_timezone(&Utc)
}

fn ulid() -> String {
    ulid::Ulid::new().to_string()
}

const CITIZEN: &str = "3f6a9c2e-1b4d-4e7f-8a0c-5d2e9b7f1a3c";
const SITE_STAFF: &str = "7b2e4d6f-9a1c-4e3b-8d5f-0a2c4e6b8d1f";
const DISPATCHER: &str = "5e7a9c1b-3d5f-4a7c-9e2b-4d6f8a0c2e4a";
const CENTRE_STAFF: &str = "9a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d";

/// Every health-centre event, several shapes of some; the `match` breaks the build when a
/// variant is added without a case here.
fn application_events() -> Vec<application::Event> {
    let sampled_at = at("2027-03-02T00:30:00Z");
    let all = vec![
        application::Event::ApplicationSubmitted {
            citizen_sub: CITIZEN.into(),
            site: "mapo".into(),
            site_name: "마포구 선별진료소".into(),
            date: date("2027-03-02"),
            contact: contact("김서연", "010-2345-6789", Locale::Ko),
        },
        // Texted in English, with the longest name there is, on the last day one may ask for.
        application::Event::ApplicationSubmitted {
            citizen_sub: "c4d5e6f7-8a9b-4c0d-9e1f-2a3b4c5d6e7f".into(),
            site: "gangnam".into(),
            site_name: "강남구 선별진료소".into(),
            date: date("2027-03-16"),
            contact: contact(&"가".repeat(50), "+14155550123", Locale::En),
        },
        application::Event::WithdrawalRequested { site: "mapo".into() },
        application::Event::ApplicationWithdrawn {},
        application::Event::WithdrawalDeclined {},
        application::Event::ApplicationSampled { sampled_at },
        application::Event::ResultHeard {
            result: TestResult::Negative,
            sampled_at,
        },
        application::Event::ResultHeard {
            result: TestResult::Positive,
            sampled_at: at("2027-03-02T09:05:31.250Z"),
        },
        application::Event::ApplicationNoShow {},
        application::Event::CertificateIssued {
            certificate: IssuedCertificate {
                id: ulid(),
                issued_at: at("2027-03-02T03:12:00Z"),
                expires_at: at("2027-03-04T00:30:00Z"),
            },
        },
        application::Event::TransferRequested { site: "gangnam".into() },
    ];
    for e in &all {
        match e {
            application::Event::ApplicationSubmitted { .. }
            | application::Event::WithdrawalRequested { .. }
            | application::Event::ApplicationWithdrawn {}
            | application::Event::WithdrawalDeclined {}
            | application::Event::ApplicationSampled { .. }
            | application::Event::ResultHeard { .. }
            | application::Event::ApplicationNoShow {}
            | application::Event::CertificateIssued { .. }
            | application::Event::TransferRequested { .. } => {}
        }
    }
    all
}

fn certificate_events() -> Vec<certificate::Event> {
    let all = vec![certificate::Event::CertificateSealed {
        application_id: ulid(),
        citizen_sub: CITIZEN.into(),
        content: Content {
            holder: PersonName::parse("김서연").expect("a valid name"),
            test_type: "RT-PCR".into(),
            sampled_at: at("2027-03-02T00:30:00Z"),
            result: TestResult::Negative,
            site_name: "마포구 선별진료소".into(),
            issuer: "clinicflow health centre".into(),
            issued_at: at("2027-03-02T00:30:00Z"),
            expires_at: at("2027-03-04T00:30:00Z"),
        },
        payload: SEALED.into(),
    }];
    for e in &all {
        match e {
            certificate::Event::CertificateSealed { .. } => {}
        }
    }
    all
}

fn site_events() -> Vec<site::Event> {
    let sampled_at = at("2027-03-02T00:30:00Z");
    let mut all = vec![
        site::Event::SiteEntryQueued {
            site: "mapo".into(),
            date: date("2027-03-02"),
        },
        site::Event::SiteEntryWithdrawn { site: "mapo".into() },
        site::Event::SampleTaken {
            site: "mapo".into(),
            sampled_at,
            by: SITE_STAFF.into(),
        },
        site::Event::ResultRecorded {
            site: "mapo".into(),
            result: TestResult::Negative,
            sampled_at,
            by: SITE_STAFF.into(),
        },
        site::Event::ResultRecorded {
            site: "gangnam".into(),
            result: TestResult::Positive,
            sampled_at,
            by: "1c3e5a7b-9d2f-4b4d-8f6a-3c5e7a9b1d2e".into(),
        },
        site::Event::NoShowMarked {
            site: "mapo".into(),
            by: SITE_STAFF.into(),
        },
    ];
    // A withdrawal too late, wherever the entry stood.
    for status in [EntryStatus::Sampled, EntryStatus::Resulted, EntryStatus::Noshow] {
        all.push(site::Event::WithdrawalRefused {
            site: "mapo".into(),
            status,
        });
    }
    for e in &all {
        match e {
            site::Event::SiteEntryQueued { .. }
            | site::Event::SiteEntryWithdrawn { .. }
            | site::Event::WithdrawalRefused { .. }
            | site::Event::SampleTaken { .. }
            | site::Event::ResultRecorded { .. }
            | site::Event::NoShowMarked { .. } => {}
        }
    }
    all
}

fn transfer_events() -> Vec<transfer::Event> {
    let all = vec![
        transfer::Event::TransferOpened { site: "gangnam".into() },
        transfer::Event::TransferDispatched {
            centre: "incheon".into(),
            by: DISPATCHER.into(),
        },
        transfer::Event::TransferClosed { centre: "incheon".into() },
    ];
    for e in &all {
        match e {
            transfer::Event::TransferOpened { .. }
            | transfer::Event::TransferDispatched { .. }
            | transfer::Event::TransferClosed { .. } => {}
        }
    }
    all
}

fn stay_events() -> Vec<stay::Event> {
    let all = vec![
        stay::Event::StayAssigned { centre: "incheon".into() },
        stay::Event::StayAdmitted {
            centre: "incheon".into(),
            by: CENTRE_STAFF.into(),
        },
        stay::Event::StayReleased {
            centre: "incheon".into(),
            by: CENTRE_STAFF.into(),
            admitted: true,
        },
        // Dispatched here, never arrived: released all the same.
        stay::Event::StayReleased {
            centre: "suwon".into(),
            by: "2d4f6a8c-0e2a-4c4e-8a6c-5f7a9c1e3b5d".into(),
            admitted: false,
        },
    ];
    for e in &all {
        match e {
            stay::Event::StayAssigned { .. } | stay::Event::StayAdmitted { .. } | stay::Event::StayReleased { .. } => {}
        }
    }
    all
}

fn wrap<E: serde::Serialize>(context: &str, version: u64, causation_id: &str, at: DateTime<Utc>, event: &E) -> Value {
    let case = ulid();
    let causality = Causality {
        correlation_id: case.clone(),
        causation_id: causation_id.to_owned(),
    };
    let envelope = EventEnvelope::wrap(ulid(), context, &case, version, &causality, at, event).expect("wraps");
    serde_json::to_value(&envelope).expect("serializes")
}

/// Envelopes of every domain event of the slice, as the commands and the consumers build
/// them: request ids and event ids as causes.
fn envelopes() -> Vec<Value> {
    let whole = at("2027-03-02T00:30:00Z");
    let mut out = Vec::new();
    for (i, e) in application_events().iter().enumerate() {
        out.push(wrap(application::CONTEXT, 1 + i as u64, "Cv01QrAbIE0EJcA=", whole, e));
    }
    for e in &certificate_events() {
        out.push(wrap(application::CONTEXT, 1, &ulid(), Utc::now(), e));
    }
    for (i, e) in site_events().iter().enumerate() {
        out.push(wrap(site::CONTEXT, 1 + i as u64, &ulid(), Utc::now(), e));
    }
    for (i, e) in transfer_events().iter().enumerate() {
        out.push(wrap(transfer::CONTEXT, 1 + i as u64, &ulid(), Utc::now(), e));
    }
    for (i, e) in stay_events().iter().enumerate() {
        out.push(wrap(stay::CONTEXT, 1 + i as u64, &ulid(), Utc::now(), e));
    }
    out
}

fn first(envelopes: &[Value], t: &str) -> Value {
    envelopes.iter().find(|e| e["type"] == t).unwrap_or_else(|| panic!("a {t}")).clone()
}

/// Envelopes edited into what the Rust types would not produce: each must be refused.
fn refusals(schemas: &Schemas, envelopes: &[Value]) {
    let cases: &[(&str, &str, Edit)] = &[
        ("ApplicationSubmitted", "an unknown data field", |e| e["data"]["extra"] = json!(1)),
        ("ApplicationSubmitted", "another source", |e| {
            e["source"] = json!("clinicflow.testsite")
        }),
        ("ApplicationSubmitted", "a national phone number", |e| {
            e["data"]["contact"]["phone"] = json!("010-2345-6789")
        }),
        ("ApplicationSubmitted", "an unknown locale", |e| {
            e["data"]["contact"]["locale"] = json!("ja")
        }),
        ("ApplicationSubmitted", "a name over 50 characters", |e| {
            e["data"]["contact"]["name"] = json!("가".repeat(51))
        }),
        ("ApplicationSubmitted", "no contact", |e| remove(&mut e["data"], "contact")),
        ("ApplicationSubmitted", "no site", |e| remove(&mut e["data"], "site")),
        ("ApplicationSubmitted", "an impossible date", |e| {
            e["data"]["date"] = json!("2027-02-30")
        }),
        ("ApplicationSubmitted", "a citizen that is not a string", |e| {
            e["data"]["citizen_sub"] = json!(7)
        }),
        ("ApplicationSubmitted", "another type", |e| {
            e["type"] = json!("ApplicationWithdrawn")
        }),
        ("ApplicationSubmitted", "version 0", |e| e["version"] = json!(0)),
        ("ApplicationSubmitted", "an id that is not a ULID", |e| {
            e["id"] = json!("application-1")
        }),
        ("ApplicationSubmitted", "an empty cause", |e| e["causation_id"] = json!("")),
        ("WithdrawalRequested", "no site", |e| remove(&mut e["data"], "site")),
        ("ApplicationWithdrawn", "a field", |e| e["data"]["by"] = json!("someone")),
        ("WithdrawalDeclined", "an unknown envelope field", |e| e["extra"] = json!(1)),
        ("ApplicationSampled", "a time that is not RFC 3339", |e| {
            e["data"]["sampled_at"] = json!("2027-03-02 09:30")
        }),
        ("ApplicationSampled", "no time", |e| remove(&mut e["data"], "sampled_at")),
        ("ResultHeard", "an unknown result", |e| e["data"]["result"] = json!("inconclusive")),
        ("ResultHeard", "no sample time", |e| remove(&mut e["data"], "sampled_at")),
        ("ResultHeard", "another source", |e| e["source"] = json!("clinicflow.testsite")),
        ("ApplicationNoShow", "a field", |e| e["data"]["site"] = json!("mapo")),
        ("CertificateIssued", "no expiry", |e| {
            remove(&mut e["data"]["certificate"], "expires_at")
        }),
        ("CertificateIssued", "an unknown certificate field", |e| {
            e["data"]["certificate"]["payload"] = json!("CF1:")
        }),
        ("CertificateIssued", "an issue time that is not RFC 3339", |e| {
            e["data"]["certificate"]["issued_at"] = json!("today")
        }),
        ("TransferRequested", "a site that is not a string", |e| {
            e["data"]["site"] = json!(["gangnam"])
        }),
        ("CertificateSealed", "an empty holder", |e| {
            e["data"]["content"]["holder"] = json!("")
        }),
        ("CertificateSealed", "a holder over 50 characters", |e| {
            e["data"]["content"]["holder"] = json!("가".repeat(51))
        }),
        ("CertificateSealed", "an unknown result", |e| {
            e["data"]["content"]["result"] = json!("inconclusive")
        }),
        ("CertificateSealed", "no payload", |e| remove(&mut e["data"], "payload")),
        ("CertificateSealed", "an unknown content field", |e| {
            e["data"]["content"]["phone"] = json!("+821023456789")
        }),
        ("CertificateSealed", "no expiry", |e| {
            remove(&mut e["data"]["content"], "expires_at")
        }),
        ("CertificateSealed", "another source", |e| {
            e["source"] = json!("clinicflow.testsite")
        }),
        ("SiteEntryQueued", "an impossible date", |e| e["data"]["date"] = json!("2027-13-01")),
        ("SiteEntryQueued", "another source", |e| {
            e["source"] = json!("clinicflow.healthcentre")
        }),
        ("SiteEntryWithdrawn", "no site", |e| remove(&mut e["data"], "site")),
        ("WithdrawalRefused", "an unknown status", |e| e["data"]["status"] = json!("taken")),
        ("WithdrawalRefused", "no status", |e| remove(&mut e["data"], "status")),
        ("SampleTaken", "no staff", |e| remove(&mut e["data"], "by")),
        ("SampleTaken", "a time that is not RFC 3339", |e| {
            e["data"]["sampled_at"] = json!(1803947400)
        }),
        ("ResultRecorded", "an unknown result", |e| e["data"]["result"] = json!("unclear")),
        ("ResultRecorded", "no site", |e| remove(&mut e["data"], "site")),
        ("NoShowMarked", "no staff", |e| remove(&mut e["data"], "by")),
        ("NoShowMarked", "a correlation that is not a ULID", |e| {
            e["correlation_id"] = json!("case-1")
        }),
        ("TransferOpened", "no site", |e| remove(&mut e["data"], "site")),
        ("TransferOpened", "another source", |e| {
            e["source"] = json!("clinicflow.healthcentre")
        }),
        ("TransferDispatched", "no centre", |e| remove(&mut e["data"], "centre")),
        ("TransferDispatched", "a dispatcher that is not a string", |e| {
            e["data"]["by"] = json!(7)
        }),
        ("TransferClosed", "an unknown data field", |e| e["data"]["beds"] = json!(49)),
        ("StayAssigned", "no centre", |e| remove(&mut e["data"], "centre")),
        ("StayAssigned", "another source", |e| e["source"] = json!("clinicflow.transfer")),
        ("StayAdmitted", "no staff", |e| remove(&mut e["data"], "by")),
        ("StayAdmitted", "a time that is not RFC 3339", |e| {
            e["occurred_at"] = json!("2027-03-02")
        }),
        ("StayReleased", "an admission that is not a boolean", |e| {
            e["data"]["admitted"] = json!("yes")
        }),
        ("StayReleased", "no admission", |e| remove(&mut e["data"], "admitted")),
    ];
    for (t, what, edit) in cases {
        let mut e = first(envelopes, t);
        edit(&mut e);
        schemas.assert_invalid(&format!("{t} with {what}"), &e);
    }
}
