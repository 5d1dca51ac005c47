-- Student section enrollments active on the as-of date (section activity is checked against sections.parquet).
SELECT sen.student_id, sen.section_id, sen.entry_date, sen.exit_date
FROM section_enrollment sen
WHERE sen.entry_date <= :as_of_date
  AND (sen.exit_date IS NULL OR sen.exit_date >= :as_of_date)
ORDER BY sen.student_id, sen.section_id, sen.entry_date
