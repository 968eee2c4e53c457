//! The hospital slice's saga: three visits registered at reception; one cancelled before a
//! doctor takes the patient; a doctor takes the two others and prescribes two exams to
//! each; an examiner performs the first visit's and cancels the second's; the doctor reviews
//! the results and completes the first treatment, refuses the second; reception closes both;
//! every query. The first publish of `hospital-visit-close`, `hospital-exam-review` and
//! `hospital-exam-cancel` fails: the sweeper publishes and marks those events, in each of the
//! slice's three tables; their second publishes mark their own.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Deployment, Saga};

pub const SAGA: Saga = Saga {
    slice: "hospital",
    unpublished: &["hospital-visit-close", "hospital-exam-review", "hospital-exam-cancel"],
    run,
    swept,
};

const DESK: (&str, &str) = ("reception-1", "reception");
const DOCTOR: (&str, &str) = ("doctor-1", "doctor");
const EXAMINER: (&str, &str) = ("examiner-1", "examiner");
const TEAM: (&str, &str) = ("team-1", "customer-team");
const PATIENT: &str = "hospital-patient-1";

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap_or_else(|| panic!("an id in {body:#}")).to_owned()
}

async fn ok(d: &Deployment, method: &str, path: &str, (sub, group): (&str, &str), body: Value, expected: u16) -> Value {
    let (status, answer) = d.http(method, path, sub, group, body).await;
    assert_eq!(status, expected, "{method} {path}: {answer:#}");
    answer
}

fn run(d: &Deployment) -> BoxFuture<'_, Vec<String>> {
    async move {
        let mut visits = Vec::new();
        for n in 0..3 {
            let mut body = json!({"name": format!("환자{n}"), "phone": "010-1234-5678", "department": "internal"});
            if n == 0 {
                body["patient_sub"] = json!(PATIENT);
            }
            visits.push(id(&ok(d, "POST", "/visits", DESK, body, 201).await));
        }
        d.settle().await;
        let queue = ok(d, "GET", "/doctor/queue?department=internal", DOCTOR, Value::Null, 200).await;
        assert_eq!(queue["items"].as_array().map(Vec::len), Some(3), "{queue:#}");
        ok(d, "POST", &format!("/visits/{}/cancel", visits[2]), DESK, Value::Null, 200).await;

        // Two exams each: the first visit's performed, the second's cancelled.
        let mut exams = Vec::new();
        for (visit, kinds) in [(&visits[0], ["blood", "ecg"]), (&visits[1], ["xray", "urine"])] {
            ok(d, "POST", &format!("/visits/{visit}/start"), DOCTOR, Value::Null, 200).await;
            for exam in kinds {
                let path = format!("/visits/{visit}/exams");
                exams.push(id(&ok(d, "POST", &path, DOCTOR, json!({"exam": exam}), 201).await));
            }
        }
        d.settle().await;
        let list = ok(d, "GET", "/exams", EXAMINER, Value::Null, 200).await;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(4), "{list:#}");
        for exam in &exams[..2] {
            let path = format!("/exams/{exam}/perform");
            ok(d, "POST", &path, EXAMINER, json!({"note": "normal"}), 200).await;
        }
        for exam in &exams[2..] {
            let path = format!("/exams/{exam}/cancel");
            ok(d, "POST", &path, EXAMINER, json!({"reason": "no time"}), 200).await;
        }
        d.settle().await;

        // The first review's publish fails; the completion needs only its commit.
        for exam in &exams[..2] {
            let path = format!("/visits/{}/review", visits[0]);
            ok(d, "POST", &path, DOCTOR, json!({"exam_id": exam}), 200).await;
        }
        ok(d, "POST", &format!("/visits/{}/complete", visits[0]), DOCTOR, Value::Null, 200).await;
        let path = format!("/visits/{}/refuse", visits[1]);
        ok(d, "POST", &path, DOCTOR, json!({"reason": "declined"}), 200).await;
        d.settle().await;
        for visit in &visits[..2] {
            ok(d, "POST", &format!("/visits/{visit}/close"), DESK, Value::Null, 200).await;
        }
        d.settle().await;
        let mut ids = visits;
        ids.extend(exams);
        ids
    }
    .boxed()
}

fn swept<'a>(d: &'a Deployment, ids: &'a [String]) -> BoxFuture<'a, ()> {
    async move {
        let (first, second, cancelled, performed, revoked) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[5]);
        for (path, who) in [
            ("/visits".to_owned(), TEAM),
            (format!("/visits/{second}"), DESK),
            (format!("/exams/{performed}"), DOCTOR),
            ("/exams?status=performed".to_owned(), EXAMINER),
            ("/me/visits".to_owned(), (PATIENT, "patient")),
        ] {
            ok(d, "GET", &path, who, Value::Null, 200).await;
        }
        let view = ok(d, "GET", &format!("/visits/{first}"), (PATIENT, "patient"), Value::Null, 200).await;
        assert_eq!(view["status"], "closed", "swept, the closing reached the view: {view:#}");
        assert_eq!(view["exams"][0]["reviewed"], true, "swept, the review reached the view: {view:#}");
        let exam = ok(d, "GET", &format!("/exams/{revoked}"), EXAMINER, Value::Null, 200).await;
        assert_eq!(exam["status"], "cancelled", "swept, the cancellation reached the view: {exam:#}");
        let view = ok(d, "GET", &format!("/visits/{cancelled}"), DESK, Value::Null, 200).await;
        assert_eq!(view["status"], "cancelled", "{view:#}");
    }
    .boxed()
}
