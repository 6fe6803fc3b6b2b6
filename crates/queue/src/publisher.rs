//! A confirmed publisher. Every message is persistent and `mandatory`; a publish counts as
//! sent only when the broker acks it *and* did not return it as unroutable (with `mandatory`
//! the broker acks returned messages too). Confirms are pipelined: a batch of messages is sent
//! first, then all confirms are awaited. Every message gets a fresh `message_id`.

use crate::{QueueError, ATTEMPT_HEADER};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};

pub struct Publisher {
    channel: Channel,
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub payload: &'a [u8],
    pub attempt: u32,
}

impl Publisher {
    pub async fn open(connection: &Connection) -> Result<Self, QueueError> {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Self { channel })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    async fn send(&self, message: &Outgoing<'_>) -> Result<PublisherConfirm, QueueError> {
        let mut headers = FieldTable::default();
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(message.attempt));
        // a fresh id per publish: it survives delay and dead-letter queues, so a dead letter
        // delivered twice is known as one message
        let properties = BasicProperties::default()
            .with_message_id(uuid::Uuid::new_v4().simple().to_string().into())
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_headers(headers);
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        Ok(self
            .channel
            .basic_publish(message.exchange, message.routing_key, options, message.payload, properties)
            .await?)
    }

    /// Sends all messages, then waits for every confirm. Succeeds only if each one was
    /// acked and routed.
    pub async fn publish_all(&self, messages: &[Outgoing<'_>]) -> Result<(), QueueError> {
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            confirms.push(self.send(message).await?);
        }
        for confirm in confirms {
            check(confirm.await?)?;
        }
        Ok(())
    }

    pub async fn publish(&self, message: &Outgoing<'_>) -> Result<(), QueueError> {
        check(self.send(message).await?.await?)
    }
}

fn check(confirmation: Confirmation) -> Result<(), QueueError> {
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Err(QueueError::Unroutable(format!("{} {}", returned.reply_code, returned.reply_text)))
        }
        Confirmation::Nack(None) => Err(QueueError::Nacked),
    }
}
