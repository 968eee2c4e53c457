//! Holds a CloudFormation template (the expanded SAM template or the synthesized CDK one)
//! to the topology of `shared/src/topology.rs` and to the rules of `infra/README.md`.
//!
//! Resources are identified by what they are, never by logical ID: functions and tables by
//! their `clinicflow:function` / `clinicflow:table` tags, aliases by the function they
//! point at, rules by their pattern and target, queues by the rule or stream mapping that
//! uses them. Every CloudFormation expression is rendered to a canonical string in those
//! terms (`table/checkup`, `alias:checkup-book:live`, `${param:JwtIssuer}`), so the same
//! checks read SAM's `Fn::Sub` and CDK's `Fn::Join` alike.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;

use clinicflow::topology::{self, Trigger};
use serde_json::{Value, json};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The SAM template, expanded to CloudFormation by `infra/scripts/sam-to-cfn.py` (the SAM
/// translator, offline), with the project's Python (`CLINICFLOW_PYTHON`, or `.venv`).
pub fn sam_expanded() -> Value {
    let root = repo_root();
    let python = std::env::var("CLINICFLOW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} not found: run ./scripts/test.sh once (it installs the SAM translator into .venv)",
        python.display()
    );
    let out = Command::new(&python)
        .arg(root.join("infra/scripts/sam-to-cfn.py"))
        .arg(root.join("infra/sam/template.yaml"))
        .output()
        .expect("sam-to-cfn.py runs");
    assert!(
        out.status.success(),
        "the SAM template does not expand:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("expanded template is JSON")
}

/// The synthesized CDK template (`cdk synth` writes it; `scripts/test.sh` runs it first).
pub fn cdk_synthesized() -> Value {
    let path = repo_root().join("infra/cdk/cdk.out/Clinicflow.template.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nsynthesize it first: (cd infra/cdk && npm ci && npx cdk synth --quiet), as scripts/test.sh does",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("synthesized template is JSON")
}

const ALIAS: &str = "live";
const MANAGED_POLICIES: [&str; 2] = [
    ":iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    ":iam::aws:policy/AWSXrayWriteOnlyAccess",
];
const TRACING_ACTIONS: [&str; 2] = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"];
const PARAMETERS: [&str; 9] = [
    "Stage",
    "JwtIssuer",
    "JwtAudience",
    "DeploymentType",
    "LogRetentionDays",
    "ApiThrottlingRateLimit",
    "ApiThrottlingBurstLimit",
    "SmsSenderId",
    "SmsOriginationNumber",
];
const OUTPUTS: [&str; 4] = ["ApiUrl", "UserPoolId", "UserPoolClientId", "EventBusName"];

/// A template and what its resources are.
struct Stack<'a> {
    resources: &'a serde_json::Map<String, Value>,
    parameters: BTreeSet<String>,
    defaults: HashMap<String, String>,
    functions: HashMap<String, &'static str>,
    tables: HashMap<String, &'static str>,
    queues: HashMap<String, String>,
}

fn tag(resource: &Value, key: &str) -> Option<String> {
    match &resource["Properties"]["Tags"] {
        Value::Array(tags) => tags
            .iter()
            .find(|t| t["Key"] == key)
            .and_then(|t| t["Value"].as_str())
            .map(str::to_owned),
        Value::Object(map) => map.get(key).and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn kind(resource: &Value) -> &str {
    resource["Type"].as_str().unwrap_or_default()
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

impl<'a> Stack<'a> {
    fn new(template: &'a Value, violations: &mut Vec<String>) -> Option<Self> {
        let Some(resources) = template["Resources"].as_object() else {
            violations.push("the template has no Resources".into());
            return None;
        };
        let parameters = template["Parameters"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let defaults = template["Parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, p)| p["Default"].as_str().map(|d| (k.clone(), d.to_owned())))
            .collect();
        let mut stack = Self {
            resources,
            parameters,
            defaults,
            functions: HashMap::new(),
            tables: HashMap::new(),
            queues: HashMap::new(),
        };
        for (id, r) in resources {
            match kind(r) {
                "AWS::Lambda::Function" => match tag(r, "clinicflow:function").and_then(|n| clinicflow::catalog().function(&n)) {
                    Some(f) => {
                        if stack.functions.values().any(|n| *n == f.name) {
                            violations.push(format!("function {} is defined twice", f.name));
                        }
                        stack.functions.insert(id.clone(), f.name);
                    }
                    None => violations.push(format!(
                        "function {id} is not in the topology (tag clinicflow:function = {:?})",
                        tag(r, "clinicflow:function")
                    )),
                },
                "AWS::DynamoDB::Table" => match tag(r, "clinicflow:table").and_then(|n| clinicflow::catalog().table(&n)) {
                    Some(t) => {
                        stack.tables.insert(id.clone(), t.name);
                    }
                    None => violations.push(format!(
                        "table {id} is not in the topology (tag clinicflow:table = {:?})",
                        tag(r, "clinicflow:table")
                    )),
                },
                _ => {}
            }
        }
        // Queues are named by their use: a consumer's dead-letter queue (shared by its
        // rules), a stream mapping's or a consumer's failure queue.
        for r in resources.values() {
            if kind(r) == "AWS::Events::Rule" {
                let Some(rule) = stack.topology_rule(r) else { continue };
                for target in as_list(&r["Properties"]["Targets"]) {
                    if let Some(q) = stack.ref_id(&target["DeadLetterConfig"]["Arn"]) {
                        stack.queues.insert(q, format!("dlq/{}", rule.target));
                    }
                }
            }
            let on_failure = match kind(r) {
                "AWS::Lambda::EventSourceMapping" | "AWS::Lambda::EventInvokeConfig" => {
                    stack.ref_id(&r["Properties"]["DestinationConfig"]["OnFailure"]["Destination"])
                }
                _ => None,
            };
            if let Some(q) = on_failure {
                let function = stack.render(&r["Properties"]["FunctionName"]);
                let name = function
                    .strip_prefix("alias:")
                    .or_else(|| function.strip_prefix("fn:"))
                    .and_then(|a| a.split(':').next())
                    .unwrap_or(&function);
                stack.queues.insert(q, format!("failure-queue/{name}"));
            }
        }
        Some(stack)
    }

    /// A parameter's default value (empty without one).
    fn default_of(&self, parameter: &str) -> &str {
        self.defaults.get(parameter).map_or("", String::as_str)
    }

    /// The logical ID an expression points at (`Ref`, `Fn::GetAtt`).
    fn ref_id(&self, v: &Value) -> Option<String> {
        if let Some(id) = v["Ref"].as_str() {
            return Some(id.to_owned());
        }
        match &v["Fn::GetAtt"] {
            Value::Array(parts) => parts.first().and_then(Value::as_str).map(str::to_owned),
            Value::String(s) => s.split('.').next().map(str::to_owned),
            _ => None,
        }
    }

    /// The canonical name of resource `id`'s attribute `attr` (`Ref` for a `Ref`).
    fn token(&self, id: &str, attr: &str) -> String {
        match id {
            "AWS::Partition" => return "aws".into(),
            "AWS::Region" => return "${region}".into(),
            "AWS::AccountId" => return "${account}".into(),
            "AWS::StackName" => return "${stack}".into(),
            "AWS::URLSuffix" => return "amazonaws.com".into(),
            _ => {}
        }
        if self.parameters.contains(id) {
            return format!("${{param:{id}}}");
        }
        let Some(r) = self.resources.get(id) else {
            return format!("${{unknown:{id}}}");
        };
        if let Some(name) = self.functions.get(id) {
            return format!("fn:{name}");
        }
        if let Some(name) = self.tables.get(id) {
            return match attr {
                "Arn" => format!("table/{name}"),
                "StreamArn" => format!("table/{name}/stream"),
                _ => format!("table-name/{name}"),
            };
        }
        if let Some(role) = self.queues.get(id) {
            return match attr {
                "Arn" => role.clone(),
                "QueueName" => format!("{role}#name"),
                _ => format!("{role}#url"),
            };
        }
        match kind(r) {
            "AWS::Lambda::Alias" => {
                let function = self.render(&r["Properties"]["FunctionName"]);
                let name = r["Properties"]["Name"].as_str().unwrap_or("?");
                format!("alias:{}:{name}", function.strip_prefix("fn:").unwrap_or(&function))
            }
            "AWS::Events::EventBus" => match attr {
                "Arn" => "event-bus".into(),
                _ => "event-bus-name".into(),
            },
            t => format!("{t}:{id}.{attr}"),
        }
    }

    /// Renders an expression to its canonical string.
    fn render(&self, v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Object(map) if map.len() == 1 => {
                let (f, arg) = map.iter().next().expect("one entry");
                match f.as_str() {
                    "Ref" => self.token(arg.as_str().unwrap_or_default(), "Ref"),
                    "Fn::GetAtt" => match arg {
                        Value::Array(parts) => self.token(
                            parts.first().and_then(Value::as_str).unwrap_or_default(),
                            parts.get(1).and_then(Value::as_str).unwrap_or_default(),
                        ),
                        Value::String(s) => {
                            let (id, attr) = s.split_once('.').unwrap_or((s, ""));
                            self.token(id, attr)
                        }
                        _ => v.to_string(),
                    },
                    "Fn::Join" => {
                        let sep = arg[0].as_str().unwrap_or_default();
                        as_list(&arg[1]).iter().map(|p| self.render(p)).collect::<Vec<_>>().join(sep)
                    }
                    "Fn::Sub" => {
                        let (text, vars) = match arg {
                            Value::String(s) => (s.as_str(), None),
                            Value::Array(parts) => (parts[0].as_str().unwrap_or_default(), parts.get(1)),
                            _ => ("", None),
                        };
                        self.substitute(text, vars)
                    }
                    "Fn::If" => format!(
                        "if({},{},{})",
                        arg[0].as_str().unwrap_or_default(),
                        self.render(&arg[1]),
                        self.render(&arg[2])
                    ),
                    _ => v.to_string(),
                }
            }
            other => other.to_string(),
        }
    }

    fn substitute(&self, text: &str, vars: Option<&Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else { break };
            let name = &rest[start + 2..start + end];
            rest = &rest[start + end + 1..];
            if let Some(value) = vars.and_then(|v| v.get(name)) {
                out.push_str(&self.render(value));
            } else {
                let (id, attr) = name.split_once('.').unwrap_or((name, "Ref"));
                out.push_str(&self.token(id, attr));
            }
        }
        out.push_str(rest);
        out
    }

    fn of_type(&self, t: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources.iter().filter(move |(_, r)| kind(r) == t)
    }

    /// The topology rule a template rule implements: same pattern, targeting its consumer.
    fn topology_rule(&self, r: &Value) -> Option<&'static topology::Rule> {
        let pattern = &r["Properties"]["EventPattern"];
        let targets: Vec<String> = as_list(&r["Properties"]["Targets"])
            .iter()
            .map(|t| self.render(&t["Arn"]))
            .collect();
        clinicflow::catalog()
            .rules
            .iter()
            .find(|rule| *pattern == rule_pattern(rule) && targets.iter().any(|t| *t == format!("alias:{}:{ALIAS}", rule.target)))
    }
}

fn rule_pattern(rule: &topology::Rule) -> Value {
    json!({"source": rule.sources, "detail-type": rule.detail_types})
}

fn diff<T: Ord + std::fmt::Debug + Clone>(what: &str, expected: &BTreeSet<T>, actual: &BTreeSet<T>, violations: &mut Vec<String>) {
    for missing in expected.difference(actual) {
        violations.push(format!("{what}: the template lacks {missing:?}"));
    }
    for extra in actual.difference(expected) {
        violations.push(format!("{what}: the template has {extra:?}, which the code does not"));
    }
}

/// Every way `template` departs from the topology and the rules; empty when it does not.
pub fn check(template: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let Some(stack) = Stack::new(template, &mut v) else { return v };
    check_functions(&stack, &mut v);
    check_roles(&stack, &mut v);
    check_rollouts(&stack, &mut v);
    check_api(&stack, &mut v);
    check_rules(&stack, &mut v);
    check_streams(&stack, &mut v);
    check_async_failures(&stack, &mut v);
    check_tables(&stack, &mut v);
    check_cognito_and_interface(&stack, template, &mut v);
    v
}

/// Which code a function runs: its `Code` (one uploaded zip per bootstrap: SAM's build of
/// `BuildProperties.Binary`, CDK's asset of `<bootstrap>/bootstrap.zip`).
fn code_of(s: &Stack<'_>, id: &str) -> String {
    s.render(&s.resources[id]["Properties"]["Code"])
}

/// The functions sharing one code are exactly the functions of one bootstrap.
fn check_bootstraps(s: &Stack<'_>, v: &mut Vec<String>) {
    let catalog = clinicflow::catalog();
    let mut by_code: std::collections::BTreeMap<String, BTreeSet<&str>> = std::collections::BTreeMap::new();
    for (id, name) in &s.functions {
        by_code.entry(code_of(s, id)).or_default().insert(name);
    }
    let actual: BTreeSet<Vec<&str>> = by_code.into_values().map(|names| names.into_iter().collect()).collect();
    let mut expected: std::collections::BTreeMap<&str, BTreeSet<&str>> = std::collections::BTreeMap::new();
    for f in &catalog.functions {
        expected.entry(catalog.bootstrap_of(f.name)).or_default().insert(f.name);
    }
    let expected: BTreeSet<Vec<&str>> = expected.into_values().map(|names| names.into_iter().collect()).collect();
    diff("functions sharing one bootstrap", &expected, &actual, v);
}

fn check_functions(s: &Stack<'_>, v: &mut Vec<String>) {
    let expected: BTreeSet<&str> = clinicflow::catalog().functions.iter().map(|f| f.name).collect();
    let actual: BTreeSet<&str> = s.functions.values().copied().collect();
    diff("functions", &expected, &actual, v);
    check_bootstraps(s, v);
    for (id, name) in &s.functions {
        let f = clinicflow::catalog().function(name).expect("tagged functions are catalogued");
        let p = &s.resources[id]["Properties"];
        let expect = |what: &str, actual: &Value, wanted: Value, v: &mut Vec<String>| {
            let same = *actual == wanted || actual.as_str().is_some_and(|a| a == wanted.to_string().trim_matches('"'));
            if !same {
                v.push(format!("function {name}: {what} is {actual}, expected {wanted}"));
            }
        };
        expect("Runtime", &p["Runtime"], json!("provided.al2023"), v);
        expect("Architectures", &p["Architectures"], json!(["arm64"]), v);
        // The bootstrap serves several functions: the Handler (`_HANDLER`) names this one.
        expect("Handler", &p["Handler"], json!(f.name), v);
        expect("MemorySize", &p["MemorySize"], json!(f.memory_mb), v);
        expect("Timeout", &p["Timeout"], json!(f.timeout_s), v);
        expect("TracingConfig.Mode", &p["TracingConfig"]["Mode"], json!("Active"), v);
        let env = &p["Environment"]["Variables"];
        for (variable, resource) in clinicflow::catalog().environment() {
            let wanted = match resource {
                topology::Resource::Table(t) => format!("table-name/{t}"),
                topology::Resource::Bus => "event-bus-name".into(),
                other => other.to_string(),
            };
            let actual = s.render(&env[&variable]);
            if actual != wanted {
                v.push(format!("function {name}: {variable} is {actual}, expected {wanted}"));
            }
        }
        match s.ref_id(&p["LoggingConfig"]["LogGroup"]).and_then(|g| s.resources.get(&g)) {
            Some(g) if kind(g) == "AWS::Logs::LogGroup" && !g["Properties"]["RetentionInDays"].is_null() => {}
            _ => v.push(format!("function {name}: no log group with a retention (LoggingConfig.LogGroup)")),
        }
    }
}

/// The (effect, action, resource) triples of a policy statement, resources canonical.
fn grants(s: &Stack<'_>, statement: &Value) -> Vec<(String, String, String)> {
    let effect = statement["Effect"].as_str().unwrap_or("?").to_owned();
    let actions = as_list(&statement["Action"]);
    let mut resources: Vec<String> = as_list(&statement["Resource"]).iter().map(|r| s.render(r)).collect();
    for not in as_list(&statement["NotResource"]) {
        let not = s.render(&not);
        resources.push(if not == "arn:aws:sns:*:*:*" {
            "not:sns-topic".into()
        } else {
            format!("not:{not}")
        });
    }
    let mut out = Vec::new();
    for a in &actions {
        for r in &resources {
            out.push((effect.clone(), a.as_str().unwrap_or("?").to_owned(), r.clone()));
        }
    }
    out
}

fn check_roles(s: &Stack<'_>, v: &mut Vec<String>) {
    let mut users: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (id, name) in &s.functions {
        match s.ref_id(&s.resources[id]["Properties"]["Role"]) {
            Some(role) => users.entry(role).or_default().push(name),
            None => v.push(format!("function {name}: its role is not a role of the stack")),
        }
    }
    for (role, names) in &users {
        if names.len() > 1 {
            v.push(format!("role {role} is shared by {names:?}: one role per function"));
        }
        let Some(r) = s.resources.get(role).filter(|r| kind(r) == "AWS::IAM::Role") else {
            v.push(format!("role {role} of {names:?} is not an AWS::IAM::Role of the stack"));
            continue;
        };
        let name = names[0];
        let p = &r["Properties"];
        let assumed = p["AssumeRolePolicyDocument"]["Statement"].as_array().is_some_and(|st| {
            st.iter()
                .any(|st| as_list(&st["Principal"]["Service"]).contains(&json!("lambda.amazonaws.com")))
        });
        if !assumed {
            v.push(format!("function {name}: its role is not assumable by lambda.amazonaws.com"));
        }
        for arn in as_list(&p["ManagedPolicyArns"]) {
            let arn = s.render(&arn);
            if !MANAGED_POLICIES.iter().any(|m| arn.starts_with("arn:aws") && arn.ends_with(m)) {
                v.push(format!("function {name}: managed policy {arn} is not allowed"));
            }
        }
        let mut statements: Vec<Value> = as_list(&p["Policies"])
            .iter()
            .flat_map(|policy| as_list(&policy["PolicyDocument"]["Statement"]))
            .collect();
        for (_, policy) in s.of_type("AWS::IAM::Policy") {
            let attached = as_list(&policy["Properties"]["Roles"])
                .iter()
                .any(|r| s.ref_id(r).as_deref() == Some(role));
            if attached {
                statements.extend(as_list(&policy["Properties"]["PolicyDocument"]["Statement"]));
            }
        }
        let actual: BTreeSet<(String, String, String)> = statements
            .iter()
            .flat_map(|st| grants(s, st))
            .filter(|(effect, action, resource)| !(effect == "Allow" && resource == "*" && TRACING_ACTIONS.contains(&action.as_str())))
            .collect();
        let f = clinicflow::catalog().function(name).expect("catalogued");
        let expected: BTreeSet<(String, String, String)> = clinicflow::catalog()
            .permissions(f)
            .iter()
            .flat_map(|g| {
                g.actions
                    .iter()
                    .map(|a| ("Allow".to_owned(), (*a).to_owned(), g.resource.to_string()))
            })
            .collect();
        diff(&format!("IAM grants of {name}"), &expected, &actual, v);
    }
}

/// The kind of an alarm, in the terms of the function it guards.
fn alarm_kind(s: &Stack<'_>, alarm: &Value) -> String {
    let p = &alarm["Properties"];
    let dims: BTreeMap<String, String> = as_list(&p["Dimensions"])
        .iter()
        .map(|d| (d["Name"].as_str().unwrap_or_default().to_owned(), s.render(&d["Value"])))
        .collect();
    match (p["Namespace"].as_str(), p["MetricName"].as_str()) {
        (Some("AWS/Lambda"), Some(metric)) => {
            let function = dims.get("FunctionName").cloned().unwrap_or_default();
            let on_alias = dims
                .get("Resource")
                .is_some_and(|r| r.contains(&function) && r.ends_with(&format!(":{ALIAS}")));
            format!("{metric} of {function}{}", if on_alias { " (live)" } else { "" })
        }
        (Some("AWS/SQS"), Some("ApproximateNumberOfMessagesVisible")) => {
            format!(
                "depth of {}",
                dims.get("QueueName").map(|q| q.trim_end_matches("#name")).unwrap_or("?")
            )
        }
        (ns, metric) => format!("{ns:?}/{metric:?}"),
    }
}

fn check_rollouts(s: &Stack<'_>, v: &mut Vec<String>) {
    for (id, name) in &s.functions {
        let aliases: Vec<&Value> = s
            .of_type("AWS::Lambda::Alias")
            .map(|(_, a)| a)
            .filter(|a| s.ref_id(&a["Properties"]["FunctionName"]).as_deref() == Some(id.as_str()))
            .collect();
        let Some(alias) = aliases.iter().find(|a| a["Properties"]["Name"] == ALIAS) else {
            v.push(format!("function {name}: no alias {ALIAS}"));
            continue;
        };
        let update = &alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"];
        let Some(group) = s.ref_id(&update["DeploymentGroupName"]).and_then(|g| s.resources.get(&g)) else {
            v.push(format!(
                "function {name}: its alias has no CodeDeploy deployment group (gradual deployment)"
            ));
            continue;
        };
        let p = &group["Properties"];
        // The expanded SAM template has the parameter's default in place of the parameter.
        let config = s.render(&p["DeploymentConfigName"]);
        let default = format!("CodeDeployDefault.Lambda{}", s.default_of("DeploymentType"));
        if !config.contains("${param:DeploymentType}") && config != default {
            v.push(format!(
                "function {name}: deployment config {config} does not follow the DeploymentType parameter"
            ));
        }
        let rollback = &p["AutoRollbackConfiguration"];
        if rollback["Enabled"] != json!(true) || !as_list(&rollback["Events"]).contains(&json!("DEPLOYMENT_STOP_ON_ALARM")) {
            v.push(format!("function {name}: deployments do not roll back on alarm"));
        }
        if p["AlarmConfiguration"]["Enabled"] != json!(true) {
            v.push(format!("function {name}: deployment alarms are not enabled"));
        }
        let actual: BTreeSet<String> = as_list(&p["AlarmConfiguration"]["Alarms"])
            .iter()
            .filter_map(|a| s.ref_id(&a["Name"]))
            .filter_map(|a| s.resources.get(&a))
            .map(|a| alarm_kind(s, a))
            .collect();
        let f = clinicflow::catalog().function(name).expect("catalogued");
        let mut expected: BTreeSet<String> = ["Errors", "Throttles"].iter().map(|m| format!("{m} of fn:{name} (live)")).collect();
        if clinicflow::catalog().rules.iter().any(|r| r.target == *name) {
            expected.insert(format!("depth of dlq/{name}"));
        }
        if f.trigger == Trigger::Stream {
            expected.insert(format!("IteratorAge of fn:{name} (live)"));
        }
        if matches!(f.trigger, Trigger::Stream | Trigger::Events) {
            expected.insert(format!("depth of failure-queue/{name}"));
        }
        diff(&format!("rollback alarms of {name}"), &expected, &actual, v);
        let alarms = as_list(&p["AlarmConfiguration"]["Alarms"]).len();
        if alarms > MAX_DEPLOYMENT_ALARMS {
            v.push(format!(
                "function {name}: its deployment group has {alarms} alarms; CodeDeploy takes at most {MAX_DEPLOYMENT_ALARMS}"
            ));
        }
    }
}

/// CodeDeploy's limit of alarms per deployment group.
const MAX_DEPLOYMENT_ALARMS: usize = 10;

fn check_api(s: &Stack<'_>, v: &mut Vec<String>) {
    let apis: Vec<(&String, &Value)> = s.of_type("AWS::ApiGatewayV2::Api").collect();
    if apis.len() != 1 {
        v.push(format!("expected one HTTP API, found {}", apis.len()));
    }
    let mut routes = BTreeSet::new();
    let mut jwt = Vec::new();
    for (_, api) in &apis {
        let body = &api["Properties"]["Body"];
        if let Some(paths) = body["paths"].as_object() {
            for (path, operations) in paths {
                for (method, op) in operations.as_object().into_iter().flatten() {
                    let target = s.render(&op["x-amazon-apigateway-integration"]["uri"]);
                    let security = as_list(&op["security"]);
                    let public = security.is_empty() || security.iter().any(|sec| sec.get("NONE").is_some());
                    routes.insert((method.to_uppercase(), path.clone(), alias_of(&target), public));
                }
            }
        }
        for (_, scheme) in body["components"]["securitySchemes"].as_object().into_iter().flatten() {
            let authorizer = &scheme["x-amazon-apigateway-authorizer"];
            if authorizer["type"] == "jwt" {
                jwt.push((
                    s.render(&authorizer["jwtConfiguration"]["issuer"]),
                    as_list(&authorizer["jwtConfiguration"]["audience"])
                        .iter()
                        .map(|a| s.render(a))
                        .collect::<Vec<_>>(),
                ));
            }
        }
    }
    for (_, route) in s.of_type("AWS::ApiGatewayV2::Route") {
        let p = &route["Properties"];
        let key = p["RouteKey"].as_str().unwrap_or_default();
        let (method, path) = key.split_once(' ').unwrap_or((key, ""));
        let target = refs_in(&p["Target"])
            .into_iter()
            .filter_map(|id| s.resources.get(&id))
            .find(|i| kind(i) == "AWS::ApiGatewayV2::Integration")
            .map(|i| s.render(&i["Properties"]["IntegrationUri"]))
            .unwrap_or_default();
        let public = p["AuthorizationType"].as_str().is_none_or(|a| a == "NONE");
        routes.insert((method.to_owned(), path.to_owned(), alias_of(&target), public));
    }
    for (_, authorizer) in s.of_type("AWS::ApiGatewayV2::Authorizer") {
        let p = &authorizer["Properties"];
        if p["AuthorizerType"] == "JWT" {
            jwt.push((
                s.render(&p["JwtConfiguration"]["Issuer"]),
                as_list(&p["JwtConfiguration"]["Audience"]).iter().map(|a| s.render(a)).collect(),
            ));
        }
    }
    let expected: BTreeSet<(String, String, String, bool)> = clinicflow::catalog()
        .routes
        .iter()
        .map(|r| {
            (
                r.method.as_str().to_owned(),
                r.path.to_owned(),
                r.function.to_owned(),
                r.is_public(),
            )
        })
        .collect();
    diff("routes (method, path, function, public)", &expected, &routes, v);
    match jwt.as_slice() {
        [(issuer, audience)] => {
            if !issuer.contains("${param:JwtIssuer}") || !audience.iter().any(|a| a.contains("${param:JwtAudience}")) {
                v.push(format!(
                    "the JWT authorizer does not take JwtIssuer/JwtAudience: {issuer} {audience:?}"
                ));
            }
        }
        other => v.push(format!("expected one JWT authorizer, found {}", other.len())),
    }
    let stages: Vec<&Value> = s.of_type("AWS::ApiGatewayV2::Stage").map(|(_, st)| st).collect();
    let logged = stages
        .iter()
        .any(|st| !st["Properties"]["AccessLogSettings"]["DestinationArn"].is_null());
    let throttled = stages.iter().any(|st| {
        let d = &st["Properties"]["DefaultRouteSettings"];
        !d["ThrottlingRateLimit"].is_null() && !d["ThrottlingBurstLimit"].is_null()
    });
    if !logged {
        v.push("the API stage has no access logs".into());
    }
    if !throttled {
        v.push("the API stage has no default throttling".into());
    }
}

/// Every logical ID an expression refers to.
fn refs_in(v: &Value) -> Vec<String> {
    match v {
        Value::Object(map) => {
            if let Some(id) = map.get("Ref").and_then(Value::as_str) {
                return vec![id.to_owned()];
            }
            if let Some(Value::Array(parts)) = map.get("Fn::GetAtt") {
                return parts.first().and_then(Value::as_str).map(str::to_owned).into_iter().collect();
            }
            map.values().flat_map(refs_in).collect()
        }
        Value::Array(items) => items.iter().flat_map(refs_in).collect(),
        _ => vec![],
    }
}

/// `alias:<function>:live` → the function; anything else stays as it is.
fn alias_of(target: &str) -> String {
    target
        .split("alias:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .filter(|_| target.contains(&format!(":{ALIAS}")))
        .map_or_else(|| target.to_owned(), str::to_owned)
}

fn check_rules(s: &Stack<'_>, v: &mut Vec<String>) {
    let mut found = BTreeSet::new();
    let mut schedules = BTreeSet::new();
    for (id, r) in s.of_type("AWS::Events::Rule") {
        let p = &r["Properties"];
        let targets = as_list(&p["Targets"]);
        if let Some(expression) = p["ScheduleExpression"].as_str() {
            for t in &targets {
                schedules.insert((expression.to_owned(), alias_of(&s.render(&t["Arn"]))));
            }
            continue;
        }
        let Some(rule) = s.topology_rule(r) else {
            v.push(format!(
                "rule {id} ({}) is not a topology rule: pattern or target differ",
                p["EventPattern"]
            ));
            continue;
        };
        found.insert(rule.name);
        if s.render(&p["EventBusName"]) != "event-bus-name" && s.render(&p["EventBusName"]) != "event-bus" {
            v.push(format!("rule {}: not on the stack's event bus", rule.name));
        }
        if targets.len() != 1 {
            v.push(format!("rule {}: {} targets, expected 1", rule.name, targets.len()));
        }
        for t in &targets {
            if t["RetryPolicy"]["MaximumRetryAttempts"].is_null() {
                v.push(format!("rule {}: its target has no retry policy", rule.name));
            }
            let dlq = s.ref_id(&t["DeadLetterConfig"]["Arn"]);
            let Some(queue) = dlq
                .as_ref()
                .filter(|q| s.resources.get(*q).is_some_and(|q| kind(q) == "AWS::SQS::Queue"))
            else {
                v.push(format!("rule {}: its target has no SQS dead-letter queue", rule.name));
                continue;
            };
            // One dead-letter queue per consumer, shared by its rules: the queue's tag says
            // whose it is.
            let own = format!("dlq/{}", rule.target);
            if s.resources.get(queue).and_then(|q| tag(q, "clinicflow:queue")).as_ref() != Some(&own) {
                v.push(format!("rule {}: its dead-letter queue is not its consumer's ({own})", rule.name));
            }
            let allowed = s.of_type("AWS::SQS::QueuePolicy").any(|(_, policy)| {
                let p = &policy["Properties"];
                as_list(&p["Queues"]).iter().any(|q| s.ref_id(q).as_deref() == Some(queue))
                    && as_list(&p["PolicyDocument"]["Statement"]).iter().any(|st| {
                        as_list(&st["Principal"]["Service"]).contains(&json!("events.amazonaws.com"))
                            && as_list(&st["Condition"]["ArnEquals"]["aws:SourceArn"])
                                .iter()
                                .any(|arn| s.ref_id(arn).as_deref() == Some(id.as_str()))
                    })
            });
            if !allowed {
                v.push(format!(
                    "rule {}: its dead-letter queue does not let the rule (aws:SourceArn) send",
                    rule.name
                ));
            }
        }
    }
    let expected: BTreeSet<&str> = clinicflow::catalog().rules.iter().map(|r| r.name).collect();
    diff("rules", &expected, &found, v);
    let expected: BTreeSet<(String, String)> = clinicflow::catalog()
        .functions
        .iter()
        .filter_map(|f| match f.trigger {
            Trigger::Schedule(e) => Some((e.to_owned(), f.name.to_owned())),
            _ => None,
        })
        .collect();
    diff("schedules (expression, function)", &expected, &schedules, v);
}

fn check_streams(s: &Stack<'_>, v: &mut Vec<String>) {
    let mut found = BTreeSet::new();
    for (id, m) in s.of_type("AWS::Lambda::EventSourceMapping") {
        let p = &m["Properties"];
        let source = s.render(&p["EventSourceArn"]);
        let target = alias_of(&s.render(&p["FunctionName"]));
        found.insert((
            source.trim_start_matches("table/").trim_end_matches("/stream").to_owned(),
            target.clone(),
        ));
        let checks = [
            ("StartingPosition TRIM_HORIZON", p["StartingPosition"] == "TRIM_HORIZON"),
            (
                "FunctionResponseTypes [ReportBatchItemFailures]",
                p["FunctionResponseTypes"] == json!(["ReportBatchItemFailures"]),
            ),
            ("BisectBatchOnFunctionError", p["BisectBatchOnFunctionError"] == json!(true)),
            (
                "a bounded MaximumRetryAttempts",
                p["MaximumRetryAttempts"].as_i64().is_some_and(|n| (0..=10_000).contains(&n)),
            ),
            (
                "an on-failure destination (its failure queue)",
                s.render(&p["DestinationConfig"]["OnFailure"]["Destination"]) == format!("failure-queue/{target}"),
            ),
        ];
        for (what, ok) in checks {
            if !ok {
                v.push(format!("stream mapping {id} ({source} → {target}): lacks {what}"));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = clinicflow::catalog()
        .streams
        .iter()
        .flat_map(|st| st.tables.iter().map(|t| ((*t).to_owned(), st.function.to_owned())))
        .collect();
    diff("stream mappings (table, function)", &expected, &found, v);
}

/// Rule targets are invoked asynchronously: what still fails after Lambda's retries must go
/// to the function's failure queue, not vanish.
fn check_async_failures(s: &Stack<'_>, v: &mut Vec<String>) {
    for f in clinicflow::catalog().functions.iter().filter(|f| f.trigger == Trigger::Events) {
        let configs: Vec<&Value> = s
            .of_type("AWS::Lambda::EventInvokeConfig")
            .map(|(_, c)| c)
            .filter(|c| s.render(&c["Properties"]["FunctionName"]) == format!("fn:{}", f.name))
            .collect();
        let ok = configs.iter().any(|c| {
            let p = &c["Properties"];
            p["Qualifier"] == ALIAS
                && p["MaximumRetryAttempts"].as_i64().is_some_and(|n| (0..=2).contains(&n))
                && s.render(&p["DestinationConfig"]["OnFailure"]["Destination"]) == format!("failure-queue/{}", f.name)
        });
        if !ok {
            v.push(format!(
                "function {}: no EventInvokeConfig on its alias sending failed deliveries to its failure queue",
                f.name
            ));
        }
    }
}

fn check_tables(s: &Stack<'_>, v: &mut Vec<String>) {
    let expected: BTreeSet<&str> = clinicflow::catalog().tables.iter().map(|t| t.name).collect();
    let actual: BTreeSet<&str> = s.tables.values().copied().collect();
    diff("tables", &expected, &actual, v);
    for (id, name) in &s.tables {
        let t = clinicflow::catalog().table(name).expect("tagged tables are catalogued");
        let r = &s.resources[id];
        let p = &r["Properties"];
        let mut problems = Vec::new();
        if p["BillingMode"] != "PAY_PER_REQUEST" {
            problems.push("not on demand".to_owned());
        }
        if p["KeySchema"] != json!([{"AttributeName": topology::TABLE_KEY, "KeyType": "HASH"}]) {
            problems.push(format!("key schema {}", p["KeySchema"]));
        }
        if p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] != json!(true) {
            problems.push("no point-in-time recovery".into());
        }
        if p["SSESpecification"]["SSEEnabled"] != json!(true) {
            problems.push("no server-side encryption".into());
        }
        let ttl = p["TimeToLiveSpecification"]["Enabled"] == json!(true)
            && p["TimeToLiveSpecification"]["AttributeName"] == topology::TTL_ATTRIBUTE;
        if ttl != t.ttl {
            problems.push(format!("TTL on {}: {ttl}, expected {}", topology::TTL_ATTRIBUTE, t.ttl));
        }
        let stream = p["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE";
        if stream != t.stream || (!t.stream && !p["StreamSpecification"].is_null()) {
            problems.push(format!("NEW_IMAGE stream: {stream}, expected {}", t.stream));
        }
        let indexes: BTreeSet<(String, String, String)> = as_list(&p["GlobalSecondaryIndexes"])
            .iter()
            .filter(|i| i["Projection"]["ProjectionType"] == "ALL")
            .map(|i| {
                let key = |k: &str| {
                    as_list(&i["KeySchema"])
                        .iter()
                        .find(|e| e["KeyType"] == k)
                        .and_then(|e| e["AttributeName"].as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                (i["IndexName"].as_str().unwrap_or_default().to_owned(), key("HASH"), key("RANGE"))
            })
            .collect();
        let wanted: BTreeSet<(String, String, String)> = t
            .indexes
            .iter()
            .map(|i| (i.name.to_owned(), i.hash.to_owned(), i.range.to_owned()))
            .collect();
        diff(&format!("indexes (projection ALL) of table {name}"), &wanted, &indexes, v);
        if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
            problems.push("not retained on deletion and replacement".into());
        }
        for p in problems {
            v.push(format!("table {name}: {p}"));
        }
    }
}

fn check_cognito_and_interface(s: &Stack<'_>, template: &Value, v: &mut Vec<String>) {
    let groups: BTreeSet<String> = s
        .of_type("AWS::Cognito::UserPoolGroup")
        .filter_map(|(_, g)| g["Properties"]["GroupName"].as_str().map(str::to_owned))
        .collect();
    let roles: BTreeSet<String> = clinicflow::catalog().roles.iter().map(|r| r.group().to_owned()).collect();
    diff("Cognito groups", &roles, &groups, v);
    let buses = s.of_type("AWS::Events::EventBus").count();
    if buses != 1 {
        v.push(format!("expected one event bus, found {buses}"));
    }
    for p in PARAMETERS {
        if !s.parameters.contains(p) {
            v.push(format!("parameter {p} is missing"));
        }
    }
    for o in OUTPUTS {
        if template["Outputs"].get(o).is_none() {
            v.push(format!("output {o} is missing"));
        }
    }
}
