-- School enrollments active on the as-of date, at active schools, whatever their status code.
SELECT se.student_id, se.school_id, se.entry_date, se.exit_date, se.enrollment_status,
       se.excluded_from_state_reporting
FROM school_enrollment se
JOIN school s ON s.school_id = se.school_id
WHERE s.is_active = 1
  AND se.entry_date <= :as_of_date
  AND (se.exit_date IS NULL OR se.exit_date >= :as_of_date)
ORDER BY se.student_id, se.school_id, se.entry_date
