-- Program participation (ELL, SPED, 504, Title I, …) active on the as-of date.
SELECT sp.student_id, sp.program_code, sp.status_code, sp.start_date, sp.end_date
FROM student_program sp
WHERE sp.start_date <= :as_of_date
  AND (sp.end_date IS NULL OR sp.end_date >= :as_of_date)
ORDER BY sp.student_id, sp.program_code, sp.start_date
