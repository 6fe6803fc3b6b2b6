-- Stigg's subscription cancellation. `cancellation_date` is when a subscription stops being
-- live: set with its status CANCELED by an IMMEDIATE cancel, or ahead of time by a scheduled
-- one (END_OF_BILLING_PERIOD, SPECIFIC_DATE) while the subscription is still live; the
-- scheduler cancels it once the database's clock reaches that time, and withdrawing the
-- schedule clears it.
ALTER TABLE subscriptions ADD COLUMN cancellation_date timestamptz;

-- the scheduler's look for due cancellations: only live subscriptions with one scheduled
CREATE INDEX subscriptions_cancellation_due ON subscriptions (cancellation_date)
    WHERE cancellation_date IS NOT NULL AND status IN ('ACTIVE', 'IN_TRIAL', 'NOT_STARTED', 'PAYMENT_PENDING');
