-- One row per house (its latest listing); the house's age rather than its build year. The model encodes the
-- neighborhood (a string), the garage flag (a boolean) and the listing time (a timestamp) itself.
SELECT house_id, sqft, bedrooms, neighborhood, has_garage, listed_at, 2026 - year_built AS age_years, price
FROM (
  SELECT *, row_number() OVER (PARTITION BY house_id ORDER BY listed_at DESC) AS listing
  FROM raw
) WHERE listing = 1
