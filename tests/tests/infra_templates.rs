//! The SAM stacks (generated, expanded by the SAM translator) and the synthesized CDK
//! stacks both build exactly the topology of `shared/src/topology.rs`: a platform stack and
//! a stack per flow, each resource in its stack, cross-stack references only through the
//! platform's named exports; its functions, routes, rules and event patterns, stream
//! mappings, schedules and tables, each function's IAM grants and nothing more, an alias
//! with a gradual, alarm-guarded rollout per function. The rules are in `infra/README.md`.
//! The last tests break good stacks in each of those ways and expect the check to notice,
//! so that the check itself cannot silently pass.

use clinicflow_tests::templates::{Deployment, MAX_STACK_RESOURCES, cdk_synthesized, check, sam_expanded};
use serde_json::{Value, json};

fn assert_clean(what: &str, deployment: &Deployment) {
    let violations = check(deployment);
    for (stack, count) in deployment.resource_counts() {
        println!("{what}: stack {stack}: {count} resources");
    }
    assert!(
        violations.is_empty(),
        "{what} departs from the topology in {} ways:\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

#[test]
fn the_sam_stacks_build_exactly_the_topology() {
    assert_clean("SAM", &sam_expanded());
}

#[test]
fn the_cdk_stacks_build_exactly_the_topology() {
    assert_clean("CDK", &cdk_synthesized());
}

/// Where a resource is: (stack index, logical ID).
type At = (usize, String);

fn resources(d: &mut Deployment, stack: usize) -> &mut serde_json::Map<String, Value> {
    d.stacks[stack].1["Resources"].as_object_mut().expect("resources")
}

fn get(d: &Deployment, at: &At) -> Value {
    d.stacks[at.0].1["Resources"][&at.1].clone()
}

fn at<'a>(d: &'a mut Deployment, at: &At) -> &'a mut Value {
    &mut resources(d, at.0)[&at.1]
}

fn find_of(d: &Deployment, kind: &str, with: impl Fn(&Value) -> bool) -> Option<At> {
    d.stacks.iter().enumerate().find_map(|(i, (_, t))| {
        t["Resources"]
            .as_object()
            .expect("resources")
            .iter()
            .find(|(_, r)| r["Type"] == kind && with(r))
            .map(|(id, _)| (i, id.clone()))
    })
}

fn first_of(d: &Deployment, kind: &str, with: impl Fn(&Value) -> bool) -> At {
    find_of(d, kind, with).unwrap_or_else(|| panic!("no {kind}"))
}

fn stack_index(d: &Deployment, name: &str) -> usize {
    d.stacks.iter().position(|(n, _)| n == name).expect("the stack")
}

fn tagged(r: &Value, key: &str, value: &str) -> bool {
    match &r["Properties"]["Tags"] {
        Value::Array(tags) => tags.iter().any(|t| t["Key"] == key && t["Value"] == value),
        Value::Object(tags) => tags.get(key).is_some_and(|v| v == value),
        _ => false,
    }
}

/// Each mutation must be reported with a message containing `expect`.
fn assert_noticed(deployment: &Deployment, what: &str, expect: &str, mutate: impl FnOnce(&mut Deployment)) {
    let mut broken = deployment.clone();
    mutate(&mut broken);
    let violations = check(&broken);
    assert!(
        violations.iter().any(|v| v.contains(expect)),
        "{what}: expected a violation containing {expect:?}, got {violations:#?}"
    );
}

fn assert_each_departure_is_noticed(template: &Deployment) {
    assert!(check(template).is_empty(), "the unbroken template passes");
    assert_noticed(template, "a function the code does not have", "not in the topology", |t| {
        let id = first_of(t, "AWS::Lambda::Function", |_| true);
        let mut rogue = get(t, &id);
        rogue["Properties"]["Tags"] = json!([{"Key": "clinicflow:function", "Value": "rogue"}]);
        resources(t, id.0).insert("Rogue".into(), rogue);
    });
    assert_noticed(
        template,
        "a missing function",
        "functions: the template lacks \"payment-refund\"",
        |t| {
            let id = first_of(t, "AWS::Lambda::Function", |r| tagged(r, "clinicflow:function", "payment-refund"));
            resources(t, id.0).remove(&id.1);
        },
    );
    assert_noticed(
        template,
        "a function on another bootstrap's code",
        "functions sharing one bootstrap",
        |t| {
            let from = first_of(t, "AWS::Lambda::Function", |r| tagged(r, "clinicflow:function", "sms-notifier"));
            let to = first_of(t, "AWS::Lambda::Function", |r| tagged(r, "clinicflow:function", "checkup-book"));
            let code = get(t, &from)["Properties"]["Code"].clone();
            at(t, &to)["Properties"]["Code"] = code;
        },
    );
    assert_noticed(
        template,
        "a handler naming another function",
        "function checkup-book: Handler",
        |t| {
            let id = first_of(t, "AWS::Lambda::Function", |r| tagged(r, "clinicflow:function", "checkup-book"));
            at(t, &id)["Properties"]["Handler"] = json!("checkup-cancel");
        },
    );
    assert_noticed(template, "a missing table", "tables: the template lacks \"views\"", |t| {
        let id = first_of(t, "AWS::DynamoDB::Table", |r| tagged(r, "clinicflow:table", "views"));
        resources(t, id.0).remove(&id.1);
    });
    assert_noticed(template, "a table without its stream", "NEW_IMAGE stream", |t| {
        let id = first_of(t, "AWS::DynamoDB::Table", |r| tagged(r, "clinicflow:table", "checkup"));
        at(t, &id)["Properties"]
            .as_object_mut()
            .expect("props")
            .remove("StreamSpecification");
    });
    assert_noticed(template, "a rule whose pattern differs", "is not a topology rule", |t| {
        let id = first_of(t, "AWS::Events::Rule", |r| !r["Properties"]["EventPattern"].is_null());
        at(t, &id)["Properties"]["EventPattern"]["detail-type"] = json!(["SomethingElse"]);
    });
    assert_noticed(
        template,
        "a missing stream mapping",
        "stream mappings (table, function): the template lacks",
        |t| {
            let id = first_of(t, "AWS::Lambda::EventSourceMapping", |_| true);
            resources(t, id.0).remove(&id.1);
        },
    );
    assert_noticed(template, "a stream mapping without bisect", "BisectBatchOnFunctionError", |t| {
        let id = first_of(t, "AWS::Lambda::EventSourceMapping", |_| true);
        at(t, &id)["Properties"]["BisectBatchOnFunctionError"] = json!(false);
    });
    assert_noticed(
        template,
        "a deployment group over CodeDeploy's alarm limit",
        "CodeDeploy takes at most 10",
        |t| {
            let id = first_of(t, "AWS::CodeDeploy::DeploymentGroup", |_| true);
            let alarms = &mut at(t, &id)["Properties"]["AlarmConfiguration"]["Alarms"];
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
            let dlq = get(t, &other_rule)["Properties"]["Targets"][0]["DeadLetterConfig"].clone();
            at(t, &notifier_rule)["Properties"]["Targets"][0]["DeadLetterConfig"] = dlq;
        },
    );
    assert_noticed(template, "a consumer whose failed deliveries vanish", "no EventInvokeConfig", |t| {
        let id = first_of(t, "AWS::Lambda::EventInvokeConfig", |_| true);
        resources(t, id.0).remove(&id.1);
    });
    assert_noticed(template, "a wider grant", "which the code does not", |t| {
        let id = first_of(t, "AWS::IAM::Role", |r| {
            r["Properties"]["AssumeRolePolicyDocument"]
                .to_string()
                .contains("lambda.amazonaws.com")
        });
        let policies = &mut at(t, &id)["Properties"]["Policies"];
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
        at(t, &id)["Properties"]["ManagedPolicyArns"] = json!(["arn:aws:iam::aws:policy/AdministratorAccess"]);
    });
    assert_noticed(template, "a function without its rollout", "no CodeDeploy deployment group", |t| {
        let id = first_of(t, "AWS::Lambda::Alias", |_| true);
        at(t, &id).as_object_mut().expect("alias").remove("UpdatePolicy");
    });
    assert_noticed(
        template,
        "a missing Cognito group",
        "Cognito groups: the template lacks \"centre\"",
        |t| {
            let id = first_of(t, "AWS::Cognito::UserPoolGroup", |r| r["Properties"]["GroupName"] == "centre");
            resources(t, id.0).remove(&id.1);
        },
    );
    assert_noticed(template, "a user pool without the site", "custom attribute `site`", |t| {
        let id = first_of(t, "AWS::Cognito::UserPool", |_| true);
        at(t, &id)["Properties"].as_object_mut().expect("props").remove("Schema");
    });
    assert_noticed(template, "users who may write their site", "lets users write", |t| {
        let id = first_of(t, "AWS::Cognito::UserPoolClient", |_| true);
        at(t, &id)["Properties"].as_object_mut().expect("props").remove("WriteAttributes");
    });
    let key = |t: &Deployment| first_of(t, "AWS::KMS::Key", |r| r["Properties"]["KeySpec"].is_string());
    assert_noticed(
        template,
        "a stack without its signing key",
        "signing keys (stacks): the template lacks",
        |t| {
            let id = key(t);
            resources(t, id.0).remove(&id.1);
        },
    );
    assert_noticed(template, "a signing key that cannot sign ES256", "KeySpec", |t| {
        let id = key(t);
        at(t, &id)["Properties"]["KeySpec"] = json!("RSA_2048");
    });
    assert_noticed(template, "a signing key deleted with its stack", "not retained", |t| {
        let id = key(t);
        at(t, &id).as_object_mut().expect("key").remove("DeletionPolicy");
    });
    assert_noticed(template, "a signing key anyone may use", "its key policy allows", |t| {
        let id = key(t);
        at(t, &id)["Properties"]["KeyPolicy"]["Statement"]
            .as_array_mut()
            .expect("statements")
            .push(json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Sign", "Resource": "*"}));
    });
    assert_noticed(template, "a verifier that may sign", "IAM grants of covid-certificates", |t| {
        // SAM writes the grant in the role, CDK in a policy attached to it.
        let verifier = |r: &Value| r.to_string().contains("kms:GetPublicKey");
        let id = ["AWS::IAM::Role", "AWS::IAM::Policy"]
            .into_iter()
            .find_map(|kind| find_of(t, kind, verifier))
            .expect("the verifier's grant");
        let text = get(t, &id).to_string().replace("kms:GetPublicKey", "kms:Sign");
        *at(t, &id) = serde_json::from_str(&text).expect("json");
    });
}

/// What both tools share beyond the single-template rules: routes as raw resources on the
/// platform's API, the stacks, their limit, their placement and their imports.
fn assert_each_stack_departure_is_noticed(d: &Deployment) {
    assert_noticed(d, "a route the code does not have", "which the code does not", |t| {
        let id = first_of(t, "AWS::ApiGatewayV2::Route", |r| r["Properties"]["AuthorizationType"] == "JWT");
        let mut rogue = get(t, &id);
        rogue["Properties"]["RouteKey"] = json!("GET /rogue");
        resources(t, id.0).insert("RogueRoute".into(), rogue);
    });
    assert_noticed(
        d,
        "a missing route",
        "routes (method, path, function, public): the template lacks",
        |t| {
            let id = first_of(t, "AWS::ApiGatewayV2::Route", |r| r["Properties"]["AuthorizationType"] == "JWT");
            resources(t, id.0).remove(&id.1);
        },
    );
    assert_noticed(d, "a protected route made public", "routes (method, path, function, public)", |t| {
        let id = first_of(t, "AWS::ApiGatewayV2::Route", |r| r["Properties"]["AuthorizationType"] == "JWT");
        at(t, &id)["Properties"]["AuthorizationType"] = json!("NONE");
    });
    assert_noticed(d, "a route API Gateway may not invoke", "API Gateway has no permission", |t| {
        for i in 0..t.stacks.len() {
            resources(t, i)
                .retain(|_, r| !(r["Type"] == "AWS::Lambda::Permission" && r["Properties"]["Principal"] == "apigateway.amazonaws.com"));
        }
    });
    assert_noticed(d, "a missing stack", "stacks: expected", |t| {
        t.stacks.pop();
    });
    assert_noticed(d, "a stack over the limit", "resources; the limit here is", |t| {
        let id = first_of(t, "AWS::SQS::Queue", |_| true);
        let queue = get(t, &id);
        for n in 0..=MAX_STACK_RESOURCES {
            resources(t, id.0).insert(format!("Padding{n}"), queue.clone());
        }
    });
    assert_noticed(
        d,
        "a function in the wrong stack",
        "function checkup-book is in stack platform",
        |t| {
            let id = first_of(t, "AWS::Lambda::Function", |r| tagged(r, "clinicflow:function", "checkup-book"));
            let function = resources(t, id.0).remove(&id.1).expect("the function");
            let platform = stack_index(t, "platform");
            resources(t, platform).insert(id.1, function);
        },
    );
    assert_noticed(d, "a table in the wrong stack", "table views is in stack checkup", |t| {
        let id = first_of(t, "AWS::DynamoDB::Table", |r| tagged(r, "clinicflow:table", "views"));
        let table = resources(t, id.0).remove(&id.1).expect("the table");
        let flow = stack_index(t, "checkup");
        resources(t, flow).insert(id.1, table);
    });
    assert_noticed(d, "an import nothing exports", "which the platform's stack does not export", |t| {
        let flow = stack_index(t, "checkup");
        let text = t.stacks[flow]
            .1
            .to_string()
            .replacen("clinicflow-${Stage}-EventBusArn", "clinicflow-${Stage}-Nothing", 1);
        t.stacks[flow].1 = serde_json::from_str(&text).expect("json");
    });
    assert_noticed(d, "a flow's stack exporting", "only the platform's stack exports", |t| {
        let flow = stack_index(t, "checkup");
        t.stacks[flow].1["Outputs"]["Rogue"] = json!({"Value": "x", "Export": {"Name": {"Fn::Sub": "clinicflow-${Stage}-Rogue"}}});
    });
    assert_noticed(d, "a variable a function is not given", "is not in its environment", |t| {
        let id = first_of(t, "AWS::Lambda::Function", |r| tagged(r, "clinicflow:function", "checkup-query"));
        at(t, &id)["Properties"]["Environment"]["Variables"]["TABLE_PROCESSED"] = json!("x");
    });
    assert_noticed(
        d,
        "a sweeper schedule naming another table",
        "schedules (expression, function, stack, tables)",
        |t| {
            let id = first_of(t, "AWS::Events::Rule", |r| !r["Properties"]["ScheduleExpression"].is_null());
            let target = &mut at(t, &id)["Properties"]["Targets"][0];
            let input = target["Input"].to_string().replacen("\\\"payment\\\"", "\\\"views\\\"", 1);
            target["Input"] = serde_json::from_str(&input).expect("json");
        },
    );
    assert_noticed(
        d,
        "a platform grant written in the platform's stack",
        "is written in stack platform, expected checkup",
        |t| {
            // The projector's grant on a flow's stream, moved from the flow's policy to the role.
            let flow = stack_index(t, "checkup");
            let policy = first_of(t, "AWS::IAM::Policy", |r| {
                r["Properties"]["PolicyDocument"].to_string().contains("dynamodb:GetRecords")
            });
            assert_eq!(policy.0, flow, "the projector's stream grants are in the flow's stack");
            let statements = get(t, &policy)["Properties"]["PolicyDocument"]["Statement"].clone();
            let role = first_of(t, "AWS::IAM::Role", |r| {
                r["Properties"].to_string().contains("dynamodb:ListStreams")
            });
            let mut policy_in_platform = get(t, &policy);
            policy_in_platform["Properties"]["Roles"] = json!([{"Ref": role.1}]);
            policy_in_platform["Properties"]["PolicyDocument"]["Statement"] = statements;
            resources(t, flow).remove(&policy.1);
            resources(t, role.0).insert("MovedPolicy".into(), policy_in_platform);
        },
    );
}

#[test]
fn the_check_notices_each_way_the_sam_stacks_could_depart() {
    let d = sam_expanded();
    assert_each_departure_is_noticed(&d);
    assert_each_stack_departure_is_noticed(&d);
}

#[test]
fn the_check_notices_each_way_the_cdk_stacks_could_depart() {
    let d = cdk_synthesized();
    assert_each_departure_is_noticed(&d);
    assert_each_stack_departure_is_noticed(&d);
}

#[test]
fn sam_and_cdk_take_the_same_parameters_with_the_same_defaults_in_every_stack() {
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
    let (sam, cdk) = (sam_expanded(), cdk_synthesized());
    for (stack, template) in &sam.stacks {
        let other = cdk.stack(stack).unwrap_or_else(|| panic!("CDK has no stack {stack}"));
        assert_eq!(defaults(template), defaults(other), "stack {stack}");
    }
}

#[test]
fn the_committed_sam_templates_are_what_the_generator_writes() {
    let root = clinicflow_tests::templates::repo_root();
    let python = std::env::var("CLINICFLOW_PYTHON").unwrap_or_else(|_| root.join(".venv/bin/python").display().to_string());
    let out = std::process::Command::new(python)
        .arg(root.join("infra/scripts/sam-gen.py"))
        .arg("--check")
        .output()
        .expect("sam-gen.py runs");
    assert!(
        out.status.success(),
        "the SAM templates are stale; regenerate them with `.venv/bin/python infra/scripts/sam-gen.py`:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
