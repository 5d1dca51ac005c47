-- Sections active on the as-of date: flagged active, in the selected school year, at an active school,
-- and the as-of date inside the section's own dates (or its term's when the section has none).
SELECT sec.section_id, sec.school_id, sec.course_id, sec.term_id, sec.section_number, sec.period_code,
       sec.class_expression, sec.room, sec.caaspp_subject, sec.class_type,
       COALESCE(sec.start_date, t.start_date) AS start_date,
       COALESCE(sec.end_date, t.end_date) AS end_date
FROM section sec
JOIN term t ON t.term_id = sec.term_id
JOIN school s ON s.school_id = sec.school_id
WHERE sec.is_active = 1
  AND s.is_active = 1
  AND t.school_year = :school_year
  AND COALESCE(sec.start_date, t.start_date) <= :as_of_date
  AND COALESCE(sec.end_date, t.end_date) >= :as_of_date
ORDER BY sec.section_id
