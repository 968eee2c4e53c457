//! The SNS SMS sender: a transactional SMS sent straight to a phone number with `Publish`.
//! SNS accepts a `Publish` to a number that opted out and silently drops it, so the sender
//! asks `CheckIfPhoneNumberIsOptedOut` first and refuses such a number itself. Errors are
//! reduced to their code: neither the number (only ever masked) nor the text is logged or
//! put in an error.

use async_trait::async_trait;
use aws_sdk_sns::config::http::HttpResponse;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;

use super::aws::error_code;
use crate::ports::{SmsError, SmsMessage, SmsSender};

/// Error codes that say the number or the message is not acceptable: retrying won't help.
const REFUSAL_CODES: &[&str] = &[
    "InvalidParameter",
    "InvalidParameterValue",
    "ParameterValueInvalid",
    "ValidationException",
    "EndpointDisabled",
    "OptedOut",
];

/// Sender settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmsSettings {
    /// `AWS.SNS.SMS.SenderID`.
    pub sender_id: Option<String>,
    /// `AWS.MM.SMS.OriginationNumber`.
    pub origination_number: Option<String>,
}

/// Sends SMS with SNS `Publish`.
#[derive(Debug, Clone)]
pub struct SnsSmsSender {
    client: aws_sdk_sns::Client,
    settings: SmsSettings,
}

impl SnsSmsSender {
    /// A sender using `client`, with the sender id and origination number of `settings`.
    pub fn new(client: aws_sdk_sns::Client, settings: SmsSettings) -> Self {
        Self { client, settings }
    }

    /// Opens the connection (during Lambda init) with one cheap call; its result is ignored.
    pub async fn prime(&self) {
        match self.client.get_sms_attributes().send().await {
            Ok(_) => tracing::debug!("sms connection primed"),
            Err(e) => tracing::debug!(error = %error_code(&e), "sms priming call failed"),
        }
    }
}

/// A `String` message attribute.
fn attribute(value: &str) -> Result<MessageAttributeValue, SmsError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|_| SmsError::Transient("MessageAttributeBuild".into()))
}

/// Refused for an unacceptable number or message, transient for anything else.
fn sms_error<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> SmsError {
    let code = error_code(e);
    if REFUSAL_CODES.contains(&code.as_str()) {
        SmsError::Refused(code)
    } else {
        SmsError::Transient(code)
    }
}

#[async_trait]
impl SmsSender for SnsSmsSender {
    async fn send(&self, message: &SmsMessage) -> Result<String, SmsError> {
        let to = message.to.e164();
        let opted_out = self
            .client
            .check_if_phone_number_is_opted_out()
            .phone_number(to)
            .send()
            .await
            .map_err(|e| sms_error(&e))?
            .is_opted_out();
        if opted_out {
            tracing::debug!(to = %message.to.masked(), "sms not sent: the number opted out");
            return Err(SmsError::Refused("opted out".into()));
        }
        let mut publish = self
            .client
            .publish()
            .phone_number(to)
            .message(&message.body)
            .message_attributes("AWS.SNS.SMS.SMSType", attribute("Transactional")?);
        if let Some(sender_id) = &self.settings.sender_id {
            publish = publish.message_attributes("AWS.SNS.SMS.SenderID", attribute(sender_id)?);
        }
        if let Some(number) = &self.settings.origination_number {
            publish = publish.message_attributes("AWS.MM.SMS.OriginationNumber", attribute(number)?);
        }
        let out = publish.send().await.map_err(|e| {
            let err = sms_error(&e);
            tracing::debug!(to = %message.to.masked(), error = %err, "sms not sent");
            err
        })?;
        let message_id = out.message_id().unwrap_or_default().to_owned();
        tracing::debug!(to = %message.to.masked(), message_id = %message_id, "sms sent");
        Ok(message_id)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_sns::Client;
    use aws_sdk_sns::config::retry::RetryConfig;
    use aws_sdk_sns::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_sns::error::ErrorMetadata;
    use aws_sdk_sns::operation::check_if_phone_number_is_opted_out::CheckIfPhoneNumberIsOptedOutOutput;
    use aws_sdk_sns::operation::publish::{PublishError, PublishInput, PublishOutput};
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};

    use super::*;
    use crate::domain::PhoneNumber;

    const NUMBER: &str = "+821012345678";

    /// A client answering from `rules` in order, with the SDK's own retries off.
    fn client(rules: &[&Rule]) -> Client {
        let interceptor = rules
            .iter()
            .fold(MockResponseInterceptor::new().rule_mode(RuleMode::Sequential), |i, r| {
                i.with_rule(r)
            });
        let config = aws_sdk_sns::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build();
        Client::from_conf(config)
    }

    fn message() -> SmsMessage {
        SmsMessage {
            key: "e1".into(),
            to: PhoneNumber::parse(NUMBER).expect("valid number"),
            body: "Your check-up is booked".into(),
        }
    }

    fn opted_out(answer: bool) -> Rule {
        mock!(Client::check_if_phone_number_is_opted_out)
            .match_requests(|req| req.phone_number() == Some(NUMBER))
            .then_output(move || CheckIfPhoneNumberIsOptedOutOutput::builder().is_opted_out(answer).build())
    }

    fn attribute_of(req: &PublishInput, name: &str) -> Option<String> {
        req.message_attributes()
            .and_then(|a| a.get(name))
            .filter(|v| v.data_type() == "String")
            .and_then(|v| v.string_value())
            .map(str::to_owned)
    }

    /// Accepts a publish, keeping the request.
    fn recording_publish(seen: Arc<Mutex<Vec<PublishInput>>>) -> Rule {
        mock!(Client::publish).then_compute_output(move |req| {
            seen.lock().expect("lock").push(req.clone());
            PublishOutput::builder().message_id("m-1").build()
        })
    }

    #[tokio::test]
    async fn a_transactional_sms_goes_to_the_number() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (check, publish) = (opted_out(false), recording_publish(seen.clone()));
        let sender = SnsSmsSender::new(client(&[&check, &publish]), SmsSettings::default());
        assert_eq!(sender.send(&message()).await, Ok("m-1".to_owned()));
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].phone_number(), Some(NUMBER));
        assert_eq!(seen[0].message(), Some("Your check-up is booked"));
        assert_eq!(attribute_of(&seen[0], "AWS.SNS.SMS.SMSType").as_deref(), Some("Transactional"));
        assert_eq!(attribute_of(&seen[0], "AWS.SNS.SMS.SenderID"), None);
        assert_eq!(attribute_of(&seen[0], "AWS.MM.SMS.OriginationNumber"), None);
    }

    #[tokio::test]
    async fn the_configured_sender_id_and_origination_number_are_sent() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (check, publish) = (opted_out(false), recording_publish(seen.clone()));
        let settings = SmsSettings {
            sender_id: Some("ClinicFlow".into()),
            origination_number: Some("+15550100".into()),
        };
        let sender = SnsSmsSender::new(client(&[&check, &publish]), settings);
        assert!(sender.send(&message()).await.is_ok());
        let seen = seen.lock().expect("lock");
        assert_eq!(attribute_of(&seen[0], "AWS.SNS.SMS.SMSType").as_deref(), Some("Transactional"));
        assert_eq!(attribute_of(&seen[0], "AWS.SNS.SMS.SenderID").as_deref(), Some("ClinicFlow"));
        assert_eq!(attribute_of(&seen[0], "AWS.MM.SMS.OriginationNumber").as_deref(), Some("+15550100"));
    }

    #[tokio::test]
    async fn an_opted_out_number_is_refused_without_publishing() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (check, publish) = (opted_out(true), recording_publish(seen.clone()));
        let sender = SnsSmsSender::new(client(&[&check, &publish]), SmsSettings::default());
        assert_eq!(sender.send(&message()).await, Err(SmsError::Refused("opted out".into())));
        assert_eq!(publish.num_calls(), 0);
    }

    #[tokio::test]
    async fn an_invalid_parameter_is_a_refusal_that_names_no_number() {
        let check = opted_out(false);
        let publish = mock!(Client::publish).then_error(|| {
            PublishError::generic(
                ErrorMetadata::builder()
                    .code("InvalidParameter")
                    .message(format!("Invalid parameter: PhoneNumber Reason: {NUMBER} is not valid"))
                    .build(),
            )
        });
        let sender = SnsSmsSender::new(client(&[&check, &publish]), SmsSettings::default());
        assert_eq!(sender.send(&message()).await, Err(SmsError::Refused("InvalidParameter".into())));
    }

    #[tokio::test]
    async fn throttling_is_transient() {
        let check = opted_out(false);
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>\
                    <RequestId>r</RequestId></ErrorResponse>";
        let publish = mock!(Client::publish).sequence().http_status(400, Some(body.to_owned())).build();
        let sender = SnsSmsSender::new(client(&[&check, &publish]), SmsSettings::default());
        assert_eq!(sender.send(&message()).await, Err(SmsError::Transient("Throttling".into())));
    }

    #[tokio::test]
    async fn a_server_error_while_checking_the_opt_out_is_transient() {
        let check = mock!(Client::check_if_phone_number_is_opted_out)
            .sequence()
            .http_status(503, None)
            .build();
        let sender = SnsSmsSender::new(client(&[&check]), SmsSettings::default());
        match sender.send(&message()).await {
            Err(SmsError::Transient(code)) => assert!(!code.contains(NUMBER), "{code}"),
            other => panic!("expected a transient failure, got {other:?}"),
        }
    }
}
