-- Orders per phone number in the last hour are counted before each order with a phone
-- (orders::reserve::check_sms_budget): without an index that count would read every order.
CREATE INDEX orders_phone_created ON orders (phone, created_at) WHERE phone IS NOT NULL;
