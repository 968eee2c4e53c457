//! The SAM template (expanded by the SAM translator) and the synthesized CDK template both
//! build exactly the topology of `shared/src/topology.rs`: its functions, routes, rules and
//! event patterns, stream mappings and tables, each function's IAM grants and nothing more,
//! an alias with a gradual, alarm-guarded rollout per function. The rules are in
//! `infra/README.md`. The last tests break a good template in each of those ways and
//! expect the check to notice, so that the check itself cannot silently pass.

use clinicflow_tests::templates::{cdk_synthesized, check, sam_expanded};
use serde_json::{Value, json};

fn assert_clean(what: &str, template: &Value) {
    let violations = check(template);
    assert!(
        violations.is_empty(),
        "{what} departs from the topology in {} ways:\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

#[test]
fn the_sam_template_builds_exactly_the_topology() {
    assert_clean("infra/sam/template.yaml", &sam_expanded());
}

#[test]
fn the_cdk_app_builds_exactly_the_topology() {
    assert_clean("the synthesized CDK template", &cdk_synthesized());
}

fn resources(t: &mut Value) -> &mut serde_json::Map<String, Value> {
    t["Resources"].as_object_mut().expect("resources")
}

fn first_of(t: &Value, kind: &str, with: impl Fn(&Value) -> bool) -> String {
    t["Resources"]
        .as_object()
        .expect("resources")
        .iter()
        .find(|(_, r)| r["Type"] == kind && with(r))
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn tagged(r: &Value, key: &str, value: &str) -> bool {
    r["Properties"]["Tags"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t["Key"] == key && t["Value"] == value))
}

/// Each mutation must be reported with a message containing `expect`.
fn assert_noticed(template: &Value, what: &str, expect: &str, mutate: impl FnOnce(&mut Value)) {
    let mut broken = template.clone();
    mutate(&mut broken);
    let violations = check(&broken);
    assert!(
        violations.iter().any(|v| v.contains(expect)),
        "{what}: expected a violation containing {expect:?}, got {violations:#?}"
    );
}

fn assert_each_departure_is_noticed(template: &Value) {
    assert!(check(template).is_empty(), "the unbroken template passes");
    assert_noticed(template, "a function the code does not have", "not in the topology", |t| {
        let id = first_of(t, "AWS::Lambda::Function", |_| true);
        let mut rogue = t["Resources"][&id].clone();
        rogue["Properties"]["Tags"] = json!([{"Key": "clinicflow:function", "Value": "rogue"}]);
        resources(t).insert("Rogue".into(), rogue);
    });
    assert_noticed(
        template,
        "a missing function",
        "functions: the template lacks \"payment-refund\"",
        |t| {
            let id = first_of(t, "AWS::Lambda::Function", |r| tagged(r, "clinicflow:function", "payment-refund"));
            resources(t).remove(&id);
        },
    );
    assert_noticed(
        template,
        "a function on another bootstrap's code",
        "functions sharing one bootstrap",
        |t| {
            let from = first_of(t, "AWS::Lambda::Function", |r| tagged(r, "clinicflow:function", "sms-notifier"));
            let to = first_of(t, "AWS::Lambda::Function", |r| tagged(r, "clinicflow:function", "checkup-book"));
            let code = t["Resources"][&from]["Properties"]["Code"].clone();
            resources(t)[&to]["Properties"]["Code"] = code;
        },
    );
    assert_noticed(
        template,
        "a handler naming another function",
        "function checkup-book: Handler",
        |t| {
            let id = first_of(t, "AWS::Lambda::Function", |r| tagged(r, "clinicflow:function", "checkup-book"));
            resources(t)[&id]["Properties"]["Handler"] = json!("checkup-cancel");
        },
    );
    assert_noticed(template, "a missing table", "tables: the template lacks \"views\"", |t| {
        let id = first_of(t, "AWS::DynamoDB::Table", |r| tagged(r, "clinicflow:table", "views"));
        resources(t).remove(&id);
    });
    assert_noticed(template, "a table without its stream", "NEW_IMAGE stream", |t| {
        let id = first_of(t, "AWS::DynamoDB::Table", |r| tagged(r, "clinicflow:table", "checkup"));
        resources(t)[&id]["Properties"]
            .as_object_mut()
            .expect("props")
            .remove("StreamSpecification");
    });
    assert_noticed(template, "a rule whose pattern differs", "is not a topology rule", |t| {
        let id = first_of(t, "AWS::Events::Rule", |r| !r["Properties"]["EventPattern"].is_null());
        resources(t)[&id]["Properties"]["EventPattern"]["detail-type"] = json!(["SomethingElse"]);
    });
    assert_noticed(
        template,
        "a missing stream mapping",
        "stream mappings (table, function): the template lacks",
        |t| {
            let id = first_of(t, "AWS::Lambda::EventSourceMapping", |_| true);
            resources(t).remove(&id);
        },
    );
    assert_noticed(template, "a stream mapping without bisect", "BisectBatchOnFunctionError", |t| {
        let id = first_of(t, "AWS::Lambda::EventSourceMapping", |_| true);
        resources(t)[&id]["Properties"]["BisectBatchOnFunctionError"] = json!(false);
    });
    assert_noticed(
        template,
        "a deployment group over CodeDeploy's alarm limit",
        "CodeDeploy takes at most 10",
        |t| {
            let id = first_of(t, "AWS::CodeDeploy::DeploymentGroup", |_| true);
            let alarms = &mut resources(t)[&id]["Properties"]["AlarmConfiguration"]["Alarms"];
            let first = alarms[0].clone();
            let list = alarms.as_array_mut().expect("alarms");
            while list.len() <= 10 {
                list.push(first.clone());
            }
        },
    );
    assert_noticed(
        template,
        "a rule dead-lettering into another consumer's queue",
        "is not its consumer's (dlq/",
        |t| {
            let notifier_rule = first_of(t, "AWS::Events::Rule", |r| {
                r["Properties"]["Targets"].to_string().contains("SmsNotifier")
            });
            let other_rule = first_of(t, "AWS::Events::Rule", |r| {
                !r["Properties"]["EventPattern"].is_null() && !r["Properties"]["Targets"].to_string().contains("SmsNotifier")
            });
            let dlq = t["Resources"][&other_rule]["Properties"]["Targets"][0]["DeadLetterConfig"].clone();
            resources(t)[&notifier_rule]["Properties"]["Targets"][0]["DeadLetterConfig"] = dlq;
        },
    );
    assert_noticed(template, "a consumer whose failed deliveries vanish", "no EventInvokeConfig", |t| {
        let id = first_of(t, "AWS::Lambda::EventInvokeConfig", |_| true);
        resources(t).remove(&id);
    });
    assert_noticed(template, "a wider grant", "which the code does not", |t| {
        let id = first_of(t, "AWS::IAM::Role", |r| {
            r["Properties"]["AssumeRolePolicyDocument"]
                .to_string()
                .contains("lambda.amazonaws.com")
        });
        let policies = &mut resources(t)[&id]["Properties"]["Policies"];
        if !policies.is_array() {
            *policies = json!([]);
        }
        policies.as_array_mut().expect("policies").push(json!({
            "PolicyName": "wider",
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]},
        }));
    });
    assert_noticed(template, "a managed policy", "is not allowed", |t| {
        let id = first_of(t, "AWS::IAM::Role", |r| {
            r["Properties"]["AssumeRolePolicyDocument"]
                .to_string()
                .contains("lambda.amazonaws.com")
        });
        resources(t)[&id]["Properties"]["ManagedPolicyArns"] = json!(["arn:aws:iam::aws:policy/AdministratorAccess"]);
    });
    assert_noticed(template, "a function without its rollout", "no CodeDeploy deployment group", |t| {
        let id = first_of(t, "AWS::Lambda::Alias", |_| true);
        resources(t)[&id].as_object_mut().expect("alias").remove("UpdatePolicy");
    });
    assert_noticed(
        template,
        "a missing Cognito group",
        "Cognito groups: the template lacks \"centre\"",
        |t| {
            let id = first_of(t, "AWS::Cognito::UserPoolGroup", |r| r["Properties"]["GroupName"] == "centre");
            resources(t).remove(&id);
        },
    );
}

#[test]
fn the_check_notices_each_way_the_sam_template_could_depart() {
    let template = sam_expanded();
    assert_each_departure_is_noticed(&template);
    assert_noticed(&template, "a route the code does not have", "which the code does not", |t| {
        let id = first_of(t, "AWS::ApiGatewayV2::Api", |_| true);
        let paths = &mut resources(t)[&id]["Properties"]["Body"]["paths"];
        let health = paths["/health"].clone();
        paths["/rogue"] = health;
    });
    assert_noticed(
        &template,
        "a protected route made public",
        "routes (method, path, function, public)",
        |t| {
            let id = first_of(t, "AWS::ApiGatewayV2::Api", |_| true);
            let op = &mut resources(t)[&id]["Properties"]["Body"]["paths"]["/checkups"]["post"];
            op.as_object_mut().expect("operation").remove("security");
        },
    );
}

#[test]
fn the_check_notices_each_way_the_cdk_template_could_depart() {
    let template = cdk_synthesized();
    assert_each_departure_is_noticed(&template);
    assert_noticed(
        &template,
        "a missing route",
        "routes (method, path, function, public): the template lacks",
        |t| {
            let id = first_of(t, "AWS::ApiGatewayV2::Route", |_| true);
            resources(t).remove(&id);
        },
    );
    assert_noticed(
        &template,
        "a protected route made public",
        "routes (method, path, function, public)",
        |t| {
            let id = first_of(t, "AWS::ApiGatewayV2::Route", |r| r["Properties"]["AuthorizationType"] == "JWT");
            resources(t)[&id]["Properties"]["AuthorizationType"] = json!("NONE");
        },
    );
}

#[test]
fn sam_and_cdk_take_the_same_parameters_with_the_same_defaults() {
    let defaults = |t: &Value| -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = t["Parameters"]
            .as_object()
            .expect("parameters")
            .iter()
            .map(|(k, p)| (k.clone(), p["Default"].to_string().trim_matches('"').to_owned()))
            .collect();
        out.sort();
        out
    };
    assert_eq!(defaults(&sam_expanded()), defaults(&cdk_synthesized()));
}
