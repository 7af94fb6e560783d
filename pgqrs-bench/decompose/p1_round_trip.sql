-- A round trip and nothing else.
SELECT 1;
