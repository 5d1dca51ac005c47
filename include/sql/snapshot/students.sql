-- Students with at least one school enrollment active on the as-of date.
SELECT stu.student_id, stu.ssid, stu.first_name, stu.middle_name, stu.last_name, stu.grade_level, stu.birth_date,
       stu.email, stu.username, stu.counselor_staff_id, stu.home_language_code, stu.reading_level,
       stu.reading_level_imputed, stu.excluded_from_state_reporting
FROM student stu
WHERE EXISTS (
    SELECT 1
    FROM school_enrollment se
    JOIN school s ON s.school_id = se.school_id
    WHERE se.student_id = stu.student_id
      AND s.is_active = 1
      AND se.entry_date <= :as_of_date
      AND (se.exit_date IS NULL OR se.exit_date >= :as_of_date)
)
ORDER BY stu.student_id
